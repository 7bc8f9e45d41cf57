"""What PyTorch needs beside the compiled operators
``torch.ops.mmdet_lossplug.dr_expectation`` / ``dr_expectation_backward``
(schemas and CPU/CUDA kernels: ``mmdet_lossplug._ext``, registered when
imported): the autograd formula and, from torch 2.4, their fake kernels,
so that ``torch.compile`` traces through them. Before 2.4 (no
``torch.library.register_fake`` / ``register_autograd``) the formula is
registered as the operator's ``Autograd`` kernel, and a compiled function
runs the operator eagerly (see :mod:`mmdet_lossplug.torch_features`).
"""
import torch
from torch import Tensor
from torch.autograd import Function

from ..torch_features import HAS_LIBRARY_FAKE_KERNELS
from ._arguments import check_devices

try:
    from .. import _ext
except ImportError as error:  # built with MMDET_LOSSPLUG_WITH_OPS=0
    _ext, EXT_IMPORT_ERROR = None, error
else:
    EXT_IMPORT_ERROR = None
HAS_EXT = _ext is not None
HAS_CUDA_KERNEL = HAS_EXT and _ext.has_cuda()


class _NoSecondDerivative(Function):
    """Marks the op's gradient: differentiating it again (a gradient
    penalty, double backward) raises instead of silently missing the op's
    second derivative. The gradient's differentiable inputs are passed
    along so that the mark is part of the graph (the backward operator
    itself has no autograd)."""

    @staticmethod
    def forward(ctx, grad: Tensor, *differentiable_inputs) -> Tensor:
        return grad.view_as(grad)

    @staticmethod
    def backward(ctx, *_):
        raise RuntimeError(
            'mmdet_lossplug: the DR expectation op has no second derivative '
            '(double backward, gradient penalties); use impl="reference" '
            'there')


def _acc_dtype(logits: Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _dr_expectation_fake(logits, labels, label_weights, lam_pos, lam_neg):
    check_devices(logits, labels=labels, label_weights=label_weights)
    batch, acc = logits.size(0), _acc_dtype(logits)
    stats = logits.new_empty(batch, _ext.NUM_STATS, dtype=acc)
    status = labels.new_empty(_ext.NUM_STATUS)
    e_neg, e_pos = (logits.new_empty(batch, dtype=acc) for _ in range(2))
    return e_neg, e_pos, stats, status


def _dr_expectation_backward_fake(grad_e_neg, grad_e_pos, logits, labels,
                                  label_weights, stats, lam_pos, lam_neg):
    check_devices(
        logits,
        grad_e_neg=grad_e_neg,
        grad_e_pos=grad_e_pos,
        labels=labels,
        label_weights=label_weights,
        stats=stats)
    return logits.new_empty(logits.shape)


def _setup_context(ctx, inputs, output):
    logits, labels, label_weights, lam_pos, lam_neg = inputs
    ctx.save_for_backward(logits, labels, label_weights, output[2])
    ctx.lams = (lam_pos, lam_neg)
    ctx.mark_non_differentiable(output[2], output[3])
    # No zero-filled gradients for stats and status (two launches a
    # backward on CUDA): absent ones come as None.
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_e_neg, grad_e_pos, _grad_stats, _grad_status):
    logits, labels, label_weights, stats = ctx.saved_tensors
    if grad_e_neg is None or grad_e_pos is None:  # one of them unused
        grad_e_neg, grad_e_pos = (
            g if g is not None else torch.zeros_like(stats[:, 0])
            for g in (grad_e_neg, grad_e_pos))
    grad = torch.ops.mmdet_lossplug.dr_expectation_backward(
        grad_e_neg, grad_e_pos, logits, labels, label_weights, stats,
        *ctx.lams)
    differentiable = (logits, grad_e_neg, grad_e_pos)
    if torch.is_grad_enabled() and any(t.requires_grad
                                       for t in differentiable):
        grad = _NoSecondDerivative.apply(grad, *differentiable)
    return grad, None, None, None, None


class _DRExpectationAutograd(Function):
    """The operator's ``Autograd`` kernel where ``torch.library`` has no
    ``register_autograd`` (torch < 2.4): the same context and backward,
    the forward dispatched below autograd to the CPU/CUDA kernel."""

    @staticmethod
    def forward(ctx, *inputs):
        with torch._C._AutoDispatchBelowAutograd():
            output = torch.ops.mmdet_lossplug.dr_expectation(*inputs)
        _setup_context(ctx, inputs, output)
        return output

    backward = staticmethod(_backward)


def _register() -> None:
    op = 'mmdet_lossplug::dr_expectation'
    if HAS_LIBRARY_FAKE_KERNELS:
        torch.library.register_fake(op)(_dr_expectation_fake)
        torch.library.register_fake(f'{op}_backward')(
            _dr_expectation_backward_fake)
        torch.library.register_autograd(
            op, _backward, setup_context=_setup_context)
        return
    global _LIBRARY  # registrations last as long as their Library object
    _LIBRARY = torch.library.Library('mmdet_lossplug', 'IMPL')
    _LIBRARY.impl('dr_expectation', _DRExpectationAutograd.apply, 'Autograd')


if HAS_EXT:
    _register()
