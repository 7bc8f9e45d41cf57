"""``dr_expectation``: DR loss's per-image expectations ``(E-, E+)``.

The one entry point the loss calls. It checks its inputs and computes with
the pure-PyTorch reference; a compiled op will sit behind the same
signature.
"""
from typing import Optional, Tuple

from torch import Tensor

from ..input_checks import check_finite, check_label_range
from .reference import dr_expectation_reference


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


def dr_expectation(logits: Tensor, labels: Tensor,
                   label_weights: Optional[Tensor], lam_pos: float,
                   lam_neg: float) -> Tuple[Tensor, Tensor]:
    """``(E-, E+)`` per image, ``(B,)`` each, float32; see
    :func:`~mmdet_lossplug.ops.reference.dr_expectation_reference`."""
    check_dr_inputs(logits, labels, label_weights, lam_pos, lam_neg)
    return dr_expectation_reference(logits, labels, label_weights, lam_pos,
                                    lam_neg)


def dr_expectation_fn(impl: str):
    """The implementation ``DRLoss(impl=...)`` calls: ``reference`` is the
    checked pure-PyTorch function; ``op`` the compiled op (an error if it
    is not built); ``auto`` the op when built, else the reference."""
    if impl not in ('auto', 'op', 'reference'):
        raise ValueError(
            f"impl must be 'auto', 'op' or 'reference', got {impl!r}")
    if impl == 'op':
        raise RuntimeError('impl="op": mmdet_lossplug was installed without '
                           'its compiled extension; use impl="reference"')
    return dr_expectation
