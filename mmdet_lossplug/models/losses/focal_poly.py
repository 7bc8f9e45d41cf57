r"""The focal / polynomial math shared by every loss of this package.

PolyLoss (Leng et al., ICLR 2022) writes cross-entropy and focal loss as
polynomials in :math:`(1 - p_t)`,

.. math::

    -\log p_t = \sum_{j \ge 1} \frac{(1-p_t)^j}{j}, \qquad
    -(1-p_t)^\gamma \log p_t = \sum_{j \ge 1} \frac{(1-p_t)^{j+\gamma}}{j},

and perturbs the leading coefficients; the calibration losses of Mukhoti et
al. (NeurIPS 2020) choose gamma per sample. Every loss here is therefore one
of two functions,

.. math::

    \ell = w_t \left[ (1-p_t)^\gamma \, \mathrm{CE}(p_t)
           + \sum_k \epsilon_k (1-p_t)^{n_k} \right],

:func:`sigmoid_focal_poly_loss` (per class, sigmoid) and
:func:`softmax_focal_poly_loss` (over classes, softmax), with a list of
``(power n_k, coefficient eps_k)`` terms and a gamma that may be a function
of the detached ``p_t``; the loss modules only choose the terms and gamma.

A NaN or infinite score gives a non-finite loss (nothing here masks it),
so that AMP's ``GradScaler`` skips the step and MMDetection's invalid-loss
check reports it.
"""
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ...precision import upcast_low_precision

# (power, coefficient) pairs of the polynomial added to the base loss.
PolyTerms = Sequence[Tuple[Union[float, Tensor], float]]


def power_of_one_minus_pt(one_minus_pt: Tensor,
                          power: Union[float, Tensor]) -> Tensor:
    """``(1 - pt) ** power`` with a finite gradient everywhere.

    At ``pt = 1`` (reached in float32 by a confident sample) the derivative
    ``power (1 - pt)^(power - 1)`` is infinite for ``power < 1`` and the
    chain rule makes it ``inf * 0 = NaN``. Clamping ``1 - pt`` at the
    smallest normal number keeps every value above it unchanged, gives the
    limit's gradient 0 below it, and also absorbs a rounding ``1 - pt``
    just below 0 (label smoothing), whose fractional power would be NaN.
    """
    tiny = torch.finfo(one_minus_pt.dtype).tiny
    return one_minus_pt.clamp(min=tiny).pow(power)


def polynomial_tail(one_minus_pt: Tensor, terms: PolyTerms) -> Tensor:
    """``sum_k eps_k (1 - pt)^n_k`` for ``terms = [(n_k, eps_k), ...]``."""
    tail = torch.zeros_like(one_minus_pt)
    for power, coefficient in terms:
        if coefficient != 0:
            tail = tail + coefficient * power_of_one_minus_pt(
                one_minus_pt, power)
    return tail


# A focusing parameter: a number, a tensor broadcastable to the loss, or a
# function of the detached ``pt`` returning such a tensor (per-sample gamma).
Gamma = Union[float, Tensor, Callable[[Tensor], Tensor]]


def modulate(base: Tensor, one_minus_pt: Tensor, gamma: Gamma) -> Tensor:
    """Focal modulation ``(1 - pt) ** gamma * base``; ``gamma = 0`` is the
    base loss itself."""
    if callable(gamma):
        gamma = gamma(1 - one_minus_pt.detach())
    elif not isinstance(gamma, Tensor) and gamma == 0:
        return base
    return power_of_one_minus_pt(one_minus_pt, gamma) * base


def binary_targets(labels: Tensor, num_classes: int) -> Tensor:
    """``(N,)`` labels in ``[0, C]`` to ``(N, C)`` 0/1 targets; label ``C``
    (background) is the all-zero row. A comparison gives the mask directly
    (``F.one_hot`` needs int64 labels and a column ``C`` to drop)."""
    return labels[:, None] == torch.arange(num_classes, device=labels.device)


def sigmoid_focal_poly_loss(pred: Tensor,
                            target: Tensor,
                            gamma: Gamma = 2.0,
                            alpha: Optional[float] = 0.25,
                            poly_terms: PolyTerms = (),
                            alpha_on_poly: bool = True,
                            activated: bool = False) -> Tensor:
    r"""Elementwise sigmoid focal loss plus a polynomial in ``1 - pt``.

    .. math::

        \ell = \alpha_t (1-p_t)^\gamma \mathrm{BCE}
             + [\alpha_t] \sum_k \epsilon_k (1-p_t)^{n_k}

    With ``gamma=0, alpha=None`` the base is binary cross-entropy.

    Args:
        pred (Tensor): Logits ``(N, C)``, or probabilities if ``activated``.
        target (Tensor): Binary targets ``(N, C)``.
        gamma (float | Tensor | callable): Focusing parameter; a tensor
            broadcastable to ``(N, C)``, or a function of the detached
            ``pt`` returning one, gives a per-sample gamma.
        alpha (float, optional): Weight of positives; ``1 - alpha`` of
            negatives. ``None`` weights both by 1.
        poly_terms: ``(power, coefficient)`` pairs of the polynomial.
        alpha_on_poly (bool): Multiply the polynomial by ``alpha_t`` too
            (the paper's code listing); ``False`` weights only the focal term.
        activated (bool): ``pred`` already holds probabilities.

    Returns:
        Tensor: Loss of shape ``(N, C)`` in float32 (or float64 inputs).
    """
    pred = upcast_low_precision(pred)
    target = target.to(pred.dtype)
    if activated:
        prob = pred  # F.binary_cross_entropy clamps log(0) to -100
        bce = F.binary_cross_entropy(prob, target, reduction='none')
    else:
        prob = pred.sigmoid()
        bce = F.binary_cross_entropy_with_logits(
            pred, target, reduction='none')
    one_minus_pt = prob * (1 - target) + (1 - prob) * target
    loss = modulate(bce, one_minus_pt, gamma)
    tail = polynomial_tail(one_minus_pt, poly_terms)
    if alpha is None:
        return loss + tail
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return alpha_t * (loss + tail) if alpha_on_poly else alpha_t * loss + tail


def softmax_focal_poly_loss(cls_score: Tensor,
                            label: Tensor,
                            gamma: Gamma = 0.0,
                            poly_terms: PolyTerms = (),
                            label_smoothing: float = 0.0,
                            class_weight: Optional[Tensor] = None,
                            ignore_index: Optional[int] = None) -> Tensor:
    r"""Per-sample softmax focal loss plus a polynomial in ``1 - Pt``.

    .. math::

        \ell = w_y \left[(1-P_t)^\gamma \mathrm{CE} + \sum_k \epsilon_k
               (1-P_t)^{n_k}\right]

    With ``gamma=0`` the base is cross-entropy. With label smoothing ``a``
    the target is ``y' = (1-a) y + a/K``, ``CE = -sum_k y'_k log P_k`` and
    ``1 - Pt = sum_k y'_k (1 - P_k)`` (the paper's code listing).

    Args:
        cls_score (Tensor): Logits ``(N, K)``.
        label (Tensor): Class indices ``(N,)`` in ``[0, K)``.
        gamma (float | Tensor | callable): Focusing parameter, ``(N,)`` per
            sample, or a function of the detached ``pt`` returning that.
        poly_terms: ``(power, coefficient)`` pairs of the polynomial.
        label_smoothing (float): ``a`` in ``[0, 1)``.
        class_weight (Tensor, optional): ``(K,)``; ``w_y`` of the true class
            scales the sample's whole loss, as ``F.cross_entropy`` does.
        ignore_index (int, optional): Label whose samples get zero loss.

    Returns:
        Tensor: Loss of shape ``(N,)`` in float32 (or float64 inputs).
    """
    cls_score = upcast_low_precision(cls_score)
    valid = torch.ones_like(label, dtype=torch.bool) if ignore_index is None \
        else label != ignore_index
    safe_label = torch.where(valid, label, torch.zeros_like(label))
    log_prob = F.log_softmax(cls_score, dim=1)
    if label_smoothing > 0:
        num_classes = cls_score.size(1)
        target = binary_targets(safe_label, num_classes).to(log_prob.dtype)
        target = target * (1 - label_smoothing) + label_smoothing / num_classes
        ce = -(target * log_prob).sum(dim=1)
        one_minus_pt = 1 - (target * log_prob.exp()).sum(dim=1)
    else:
        log_pt = log_prob.gather(1, safe_label[:, None]).squeeze(1)
        ce = -log_pt
        one_minus_pt = -torch.expm1(log_pt)  # 1 - pt without cancellation
    loss = modulate(ce, one_minus_pt, gamma) + polynomial_tail(
        one_minus_pt, poly_terms)
    if class_weight is not None:
        loss = loss * class_weight.to(loss)[safe_label]
    return torch.where(valid, loss, torch.zeros_like(loss))
