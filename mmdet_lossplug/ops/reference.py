r"""Pure-PyTorch reference of DR loss's per-image expectations.

For image ``i`` over all anchors ``a`` of all FPN levels and classes ``k``
(``p = sigmoid(logits)``), with positives
``P_i = {(a, k): label_a = k < C, w_a > 0}`` and negatives
``N_i = {(a, k): label_a != k, w_a > 0}``:

.. math::

    E^-_i = \sum_{j \in N_i} \mathrm{softmax}_{N_i}(p / \lambda_-)_j\, p_j,
    \qquad
    E^+_i = \sum_{j \in P_i} \mathrm{softmax}_{P_i}(-p / \lambda_+)_j\, p_j,

``E+ = 1`` for an image without positives and ``E- = 0`` for one without
negatives (every anchor ignored); both are NaN for an image with a
non-finite logit (an ignored anchor's too). The fallback where the compiled
op is not built; autograd gives its gradient. It checks its inputs like the
op: shapes, dtypes, devices and temperatures on the host, the values
(labels in ``[0, C]``, no NaN weight) through
:func:`~mmdet_lossplug.input_checks.check_without_sync`, without a host sync.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..precision import upcast_low_precision
from ._arguments import (check_dr_arguments, check_label_range,
                         check_scores_finite, check_without_sync)


def _masked_softmax_expectation(scores: Tensor, prob: Tensor, mask: Tensor,
                                empty_value: float) -> Tensor:
    """Per image (dim 0), ``sum softmax(scores)[mask] * prob[mask]`` over
    every other dim; ``empty_value`` where the mask selects nothing."""
    dims = tuple(range(1, scores.dim()))
    masked = scores.masked_fill(~mask, float('-inf'))
    # Shift by the max for exp() to stay finite; an image with an empty set
    # has max -inf and is shifted by 0 instead, as are images without
    # elements (A = 0 or C = 0), where amax has nothing to reduce.
    if math.prod(scores.shape[1:]) == 0:
        shift = scores.new_zeros((scores.size(0), ) + (1, ) * len(dims))
    else:
        shift = masked.amax(dim=dims, keepdim=True).detach()
        shift = shift.masked_fill(~torch.isfinite(shift), 0.0)
    weight = (masked - shift).exp()  # exactly 0 outside the mask
    total = weight.sum(dim=dims)
    expectation = (weight * prob).sum(dim=dims) / total.clamp(min=1e-30)
    return torch.where(total > 0, expectation,
                       torch.full_like(expectation, empty_value))


def dr_expectation_reference(logits: Tensor, labels: Tensor,
                             label_weights: Optional[Tensor], lam_pos: float,
                             lam_neg: float) -> Tuple[Tensor, Tensor]:
    """``(E-, E+)`` of each image, both ``(B,)``, float32 (float64 for
    float64 logits).

    Args:
        logits (Tensor): ``(B, A, C)`` classification logits of every anchor
            of every level of each image.
        labels (Tensor): ``(B, A)`` integers in ``[0, C]``, ``C`` =
            background.
        label_weights (Tensor, optional): ``(B, A)``, not NaN; anchors with
            weight ``<= 0`` are ignored.
        lam_pos (float): Temperature of the positives' distribution.
        lam_neg (float): Temperature of the negatives' distribution.
    """
    check_dr_arguments(logits, labels, label_weights, lam_pos, lam_neg)
    num_classes = logits.size(-1)
    check_label_range(labels, num_classes, name='labels')
    if label_weights is not None:
        check_without_sync(~label_weights.isnan().any(),
                           'label_weights has NaN value(s)')
    logits = upcast_low_precision(logits)
    check_scores_finite(logits, 'logits')  # under eager checks only
    # 0 for an image of finite logits, NaN for one with a NaN or +-inf.
    nan_if_non_finite = (logits * 0).sum(dim=(1, 2))
    prob = logits.sigmoid()
    valid = torch.ones_like(labels, dtype=torch.bool) \
        if label_weights is None else label_weights > 0
    classes = torch.arange(num_classes, device=logits.device)
    is_label = labels[..., None] == classes  # bool (B, A, C)
    pos = is_label & valid[..., None]
    neg = ~is_label & valid[..., None]
    e_neg = _masked_softmax_expectation(prob / lam_neg, prob, neg, 0.0)
    e_pos = _masked_softmax_expectation(-prob / lam_pos, prob, pos, 1.0)
    return e_neg + nan_if_non_finite, e_pos + nan_if_non_finite
