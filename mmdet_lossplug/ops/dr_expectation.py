"""``dr_expectation``: DR loss's per-image expectations ``(E-, E+)``.

The one entry point the loss calls. It checks its inputs, then runs the
compiled op (``mmdet_lossplug._ext``: fused CPU and CUDA kernels, backward
written directly) when it is built for the input's device, and the
pure-PyTorch reference otherwise, with one warning.
"""
import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from ..input_checks import check_finite, check_label_range
from .reference import dr_expectation_reference

try:
    from .. import _ext
except ImportError as error:  # built with MMDET_LOSSPLUG_WITH_OPS=0
    _ext, EXT_IMPORT_ERROR = None, error
else:
    EXT_IMPORT_ERROR = None
HAS_EXT = _ext is not None


def check_dr_inputs(logits: Tensor, labels: Tensor,
                    label_weights: Optional[Tensor], lam_pos: float,
                    lam_neg: float) -> None:
    """Shapes ``(B, A, C)``, ``(B, A)``, ``(B, A)``; labels in ``[0, C]``;
    finite logits; positive temperatures. Messages name the bad value."""
    if logits.dim() != 3:
        raise ValueError('logits must have shape (B, A, C), got '
                         f'{tuple(logits.shape)}')
    batch, anchors, num_classes = logits.shape
    if tuple(labels.shape) != (batch, anchors):
        raise ValueError(f'labels must have shape {(batch, anchors)}, got '
                         f'{tuple(labels.shape)}')
    if label_weights is not None and tuple(
            label_weights.shape) != (batch, anchors):
        raise ValueError(f'label_weights must have shape {(batch, anchors)},'
                         f' got {tuple(label_weights.shape)}')
    if not (lam_pos > 0 and lam_neg > 0):
        raise ValueError(
            f'lam_pos and lam_neg must be > 0, got {lam_pos}, {lam_neg}')
    check_label_range(labels, num_classes, name='labels')
    check_finite(logits, 'logits')


class _DRExpectationFunction(Function):
    """The compiled op with its hand-written backward: the forward keeps
    per-image softmax statistics (B x 6), the backward writes d loss /
    d logits in one pass from them."""

    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor,
                label_weights: Optional[Tensor], lam_pos: float,
                lam_neg: float) -> Tuple[Tensor, Tensor]:
        logits = logits.contiguous()
        labels = labels.to(torch.int64).contiguous()
        if label_weights is not None:
            label_weights = label_weights.to(torch.float32).contiguous()
        stats = _ext.dr_expectation_forward(logits, labels, label_weights,
                                            lam_pos, lam_neg)
        ctx.save_for_backward(logits, labels, label_weights, stats)
        ctx.lams = (lam_pos, lam_neg)
        return (stats[:, _ext.ENEG_COLUMN].clone(),
                stats[:, _ext.EPOS_COLUMN].clone())

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_e_neg: Optional[Tensor],
                 grad_e_pos: Optional[Tensor]):
        logits, labels, label_weights, stats = ctx.saved_tensors
        grads = [
            torch.zeros_like(stats[:, 0])
            if g is None else g.to(stats.dtype).contiguous()
            for g in (grad_e_neg, grad_e_pos)
        ]
        grad_logits = _ext.dr_expectation_backward(logits, labels,
                                                   label_weights, stats,
                                                   *grads, *ctx.lams)
        return grad_logits, None, None, None, None


# The op shifts each softmax by the bound of its scores (p / lam with p in
# (0, 1)); its weights stay normal float32 numbers for 1 / lam <= 80
# (kMaxInvLambda in csrc/dr_expectation_math.h).
MIN_OP_LAMBDA = 1 / 80


def _op_supports(logits: Tensor, lam_pos: float, lam_neg: float) -> bool:
    return (HAS_EXT and (not logits.is_cuda or _ext.has_cuda())
            and min(lam_pos, lam_neg) >= MIN_OP_LAMBDA)


def dr_expectation_op(logits: Tensor, labels: Tensor,
                      label_weights: Optional[Tensor], lam_pos: float,
                      lam_neg: float) -> Tuple[Tensor, Tensor]:
    """The compiled op; an error where it is not built for the device."""
    check_dr_inputs(logits, labels, label_weights, lam_pos, lam_neg)
    if min(lam_pos, lam_neg) < MIN_OP_LAMBDA:
        raise ValueError(
            f'the compiled op needs lam_pos, lam_neg >= 1/80, got {lam_pos}, '
            f'{lam_neg}; use impl="reference" (or "auto")')
    if not _op_supports(logits, lam_pos, lam_neg):
        raise RuntimeError(
            'mmdet_lossplug\'s compiled op is not built for '
            f'{logits.device.type} ({EXT_IMPORT_ERROR or "no CUDA kernel"}); '
            "reinstall with 'pip install --no-build-isolation -e .' or use "
            "impl='reference'")
    return _DRExpectationFunction.apply(logits, labels, label_weights,
                                        float(lam_pos), float(lam_neg))


def checked_dr_expectation_reference(logits, labels, label_weights, lam_pos,
                                     lam_neg) -> Tuple[Tensor, Tensor]:
    """The pure-PyTorch reference behind the same input checks."""
    check_dr_inputs(logits, labels, label_weights, lam_pos, lam_neg)
    return dr_expectation_reference(logits, labels, label_weights, lam_pos,
                                    lam_neg)


_warned_fallback = set()


def dr_expectation(logits: Tensor, labels: Tensor,
                   label_weights: Optional[Tensor], lam_pos: float,
                   lam_neg: float) -> Tuple[Tensor, Tensor]:
    """``(E-, E+)`` per image, ``(B,)`` each, float32 (float64 for float64
    logits): the compiled op where built (and ``lam >= 1/80``), else the
    reference (one warning per device type). See
    :func:`~mmdet_lossplug.ops.reference.dr_expectation_reference`."""
    check_dr_inputs(logits, labels, label_weights, lam_pos, lam_neg)
    if _op_supports(logits, lam_pos, lam_neg):
        return _DRExpectationFunction.apply(logits, labels, label_weights,
                                            float(lam_pos), float(lam_neg))
    if logits.device.type not in _warned_fallback:
        _warned_fallback.add(logits.device.type)
        why = (f'lambda below {MIN_OP_LAMBDA}'
               if HAS_EXT and min(lam_pos, lam_neg) < MIN_OP_LAMBDA else
               EXT_IMPORT_ERROR or 'no CUDA kernel')
        warnings.warn('mmdet_lossplug: compiled DR op not used for '
                      f'{logits.device.type} ({why}); using the pure-PyTorch '
                      'reference (slower, more memory)')
    return dr_expectation_reference(logits, labels, label_weights, lam_pos,
                                    lam_neg)


def dr_expectation_fn(impl: str):
    """The implementation ``DRLoss(impl=...)`` calls: ``auto`` is
    :func:`dr_expectation`; ``op`` the compiled op (an error now if the
    extension is not built at all); ``reference`` the pure-PyTorch one."""
    if impl == 'auto':
        return dr_expectation
    if impl == 'reference':
        return checked_dr_expectation_reference
    if impl == 'op':
        if not HAS_EXT:
            raise RuntimeError(
                'impl="op" but mmdet_lossplug was installed without its '
                f'compiled extension ({EXT_IMPORT_ERROR}); use '
                'impl="reference" or reinstall')
        return dr_expectation_op
    raise ValueError(f"impl must be 'auto', 'op' or 'reference', got {impl!r}")
