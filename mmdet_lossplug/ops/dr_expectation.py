"""``dr_expectation``: DR loss's per-image expectations ``(E-, E+)``.

The compiled op is a PyTorch operator, ``torch.ops.mmdet_lossplug.
dr_expectation`` with ``dr_expectation_backward`` (schemas, CPU and CUDA
kernels: ``mmdet_lossplug._ext``, registered when imported). This module
adds its fake kernels (``torch.compile`` traces through it) and its
autograd formula, and the entry point the loss calls: the op where it is
built for the input's device, else the pure-PyTorch reference, with one
warning.

Bad values the op finds in its own pass (non-finite logits, labels outside
``[0, C]``, NaN weights) raise at once on the CPU (from the kernel); on
CUDA they are reported by :func:`~mmdet_lossplug.input_checks.check_values`
at the next sync (at once with ``MMDET_LOSSPLUG_EAGER_CHECKS=1``).
"""
import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.autograd import Function

from ..input_checks import check_values
from .reference import check_dr_arguments, dr_expectation_reference

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
    second derivative."""

    @staticmethod
    def forward(ctx, grad: Tensor) -> Tensor:
        return grad.view_as(grad)

    @staticmethod
    def backward(ctx, _):
        raise RuntimeError(
            'mmdet_lossplug: the DR expectation op has no second derivative '
            '(double backward, gradient penalties); use DRLoss(impl='
            '"reference") there')


def _acc_dtype(logits: Tensor) -> torch.dtype:
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


if HAS_EXT:

    @torch.library.register_fake('mmdet_lossplug::dr_expectation')
    def _dr_expectation_fake(logits, labels, label_weights, lam_pos, lam_neg):
        batch, acc = logits.size(0), _acc_dtype(logits)
        stats = logits.new_empty(batch, _ext.NUM_STATS, dtype=acc)
        status = labels.new_empty(_ext.NUM_STATUS)
        e_neg, e_pos = (logits.new_empty(batch, dtype=acc) for _ in range(2))
        return e_neg, e_pos, stats, status

    @torch.library.register_fake('mmdet_lossplug::dr_expectation_backward')
    def _dr_expectation_backward_fake(grad_e_neg, grad_e_pos, logits, labels,
                                      label_weights, stats, lam_pos, lam_neg):
        return logits.new_empty(logits.shape)

    def _setup_context(ctx, inputs, output):
        logits, labels, label_weights, lam_pos, lam_neg = inputs
        ctx.save_for_backward(logits, labels, label_weights, output[2])
        ctx.lams = (lam_pos, lam_neg)
        ctx.mark_non_differentiable(output[2], output[3])

    def _backward(ctx, grad_e_neg, grad_e_pos, _grad_stats, _grad_status):
        logits, labels, label_weights, stats = ctx.saved_tensors
        grad = torch.ops.mmdet_lossplug.dr_expectation_backward(
            grad_e_neg, grad_e_pos, logits, labels, label_weights, stats,
            *ctx.lams)
        if torch.is_grad_enabled() and (logits.requires_grad
                                        or grad_e_neg.requires_grad
                                        or grad_e_pos.requires_grad):
            grad = _NoSecondDerivative.apply(grad)  # under create_graph
        return grad, None, None, None, None

    torch.library.register_autograd(
        'mmdet_lossplug::dr_expectation',
        _backward,
        setup_context=_setup_context)


def _op_supports(logits: Tensor) -> bool:
    return logits.device.type == 'cpu' or (logits.is_cuda and HAS_CUDA_KERNEL)


def _run_op(logits: Tensor, labels: Tensor, label_weights: Optional[Tensor],
            lam_pos: float, lam_neg: float) -> Tuple[Tensor, Tensor]:
    if label_weights is not None:
        label_weights = label_weights.to(torch.float32)
    e_neg, e_pos, _, status = torch.ops.mmdet_lossplug.dr_expectation(
        logits, labels.to(torch.int64), label_weights, float(lam_pos),
        float(lam_neg))
    if not logits.device.type == 'cpu':  # the CPU kernel raised already
        check_values(
            status.eq(0).all(),
            'dr_expectation: NaN/Inf logits, a label outside [0, '
            f'{logits.size(-1)}] or a NaN label weight (the CPU op, or '
            'MMDET_LOSSPLUG_EAGER_CHECKS=1 and status, say which)')
    return e_neg, e_pos


def dr_expectation_op(logits: Tensor, labels: Tensor,
                      label_weights: Optional[Tensor], lam_pos: float,
                      lam_neg: float) -> Tuple[Tensor, Tensor]:
    """The compiled op; an error where it is not built for the device."""
    check_dr_arguments(logits, labels, label_weights, lam_pos, lam_neg)
    if not (HAS_EXT and _op_supports(logits)):
        raise RuntimeError(
            'mmdet_lossplug\'s compiled op is not built for '
            f'{logits.device.type} ({EXT_IMPORT_ERROR or "no CUDA kernel"}); '
            "reinstall with 'pip install --no-build-isolation -e .' or use "
            "impl='reference'")
    return _run_op(logits, labels, label_weights, lam_pos, lam_neg)


_warned_fallback = set()


def dr_expectation(logits: Tensor, labels: Tensor,
                   label_weights: Optional[Tensor], lam_pos: float,
                   lam_neg: float) -> Tuple[Tensor, Tensor]:
    """``(E-, E+)`` per image, ``(B,)`` each, float32 (float64 for float64
    logits): the compiled op where built, else the reference (one warning
    per device type). See
    :func:`~mmdet_lossplug.ops.reference.dr_expectation_reference`."""
    check_dr_arguments(logits, labels, label_weights, lam_pos, lam_neg)
    if HAS_EXT and _op_supports(logits):
        return _run_op(logits, labels, label_weights, lam_pos, lam_neg)
    if logits.device.type not in _warned_fallback:
        _warned_fallback.add(logits.device.type)
        warnings.warn('mmdet_lossplug: compiled DR op not used for '
                      f'{logits.device.type} '
                      f'({EXT_IMPORT_ERROR or "no CUDA kernel"}); using the '
                      'pure-PyTorch reference (slower, more memory)')
    return dr_expectation_reference(logits, labels, label_weights, lam_pos,
                                    lam_neg)


def dr_expectation_fn(impl: str):
    """The implementation ``DRLoss(impl=...)`` calls: ``auto`` is
    :func:`dr_expectation`; ``op`` the compiled op (an error now if the
    extension is not built at all); ``reference`` the pure-PyTorch one."""
    if impl == 'auto':
        return dr_expectation
    if impl == 'reference':
        return dr_expectation_reference
    if impl == 'op':
        if not HAS_EXT:
            raise RuntimeError(
                'impl="op" but mmdet_lossplug was installed without its '
                f'compiled extension ({EXT_IMPORT_ERROR}); use '
                'impl="reference" or reinstall')
        return dr_expectation_op
    raise ValueError(f"impl must be 'auto', 'op' or 'reference', got {impl!r}")
