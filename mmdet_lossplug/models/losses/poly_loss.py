r"""PolyLoss modules: Poly-1 / Poly-1* focal and Poly-N cross-entropy.

Leng et al., *PolyLoss: A Polynomial Expansion Perspective of
Classification Loss Functions*, ICLR 2022. The math is in
:mod:`.focal_poly`; each module here checks its inputs and chooses the
polynomial's ``(power, coefficient)`` terms.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from ...input_checks import (check_binary_targets, check_labels, check_logits,
                             check_number, check_reduction, check_weight)
from .focal_poly import (PolyTerms, binary_targets, sigmoid_focal_poly_loss,
                         softmax_focal_poly_loss)
from .reduction import weight_reduce_elementwise_loss


def check_epsilon(epsilon: float, name: str = 'epsilon') -> float:
    """Poly-1 needs ``epsilon >= -1``: below it the loss is not monotone in
    pt and training diverges (PolyLoss paper, Sec. 4)."""
    return check_number(epsilon, name, low=-1.0)


class SigmoidFocalPolyLossBase(nn.Module):
    """Sigmoid focal loss with a polynomial tail; subclasses choose the
    tail in :meth:`poly_terms`. Takes the arguments of MMDetection's
    ``FocalLoss`` so a config swaps one ``type`` for another."""

    def __init__(self,
                 use_sigmoid: bool = True,
                 gamma: float = 2.0,
                 alpha: Optional[float] = 0.25,
                 epsilon: float = -1.0,
                 alpha_on_poly: bool = True,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 activated: bool = False) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError(f'{type(self).__name__} is a sigmoid loss; '
                             'use_sigmoid=False is not supported')
        check_reduction(reduction, allow_none=False)
        self.use_sigmoid = use_sigmoid
        self.gamma = check_number(gamma, 'gamma', low=0.0)
        self.alpha = None if alpha is None else check_number(
            alpha, 'alpha', low=0.0, high=1.0)
        self.epsilon = check_epsilon(epsilon)
        self.alpha_on_poly = alpha_on_poly
        self.reduction = reduction
        self.loss_weight = check_number(loss_weight, 'loss_weight', low=0.0)
        self.activated = activated

    def poly_terms(self) -> PolyTerms:
        raise NotImplementedError

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """
        Args:
            pred (Tensor): Logits ``(N, C)`` (probabilities if
                ``activated``).
            target (Tensor): Integer labels ``(N,)`` in ``[0, C]``, ``C``
                being background, or one-hot/soft targets ``(N, C)`` in
                ``[0, 1]``.
            weight (Tensor, optional): ``(N,)`` or ``(N, C)``.
            avg_factor (float, optional): Divisor of the summed loss for
                ``mean`` (the number of positives in dense heads).
            reduction_override (str, optional): ``none``, ``mean``, ``sum``.
        """
        check_reduction(reduction_override, allow_none=True)
        reduction = reduction_override or self.reduction
        check_logits(pred)
        num_classes = pred.size(1)
        if target.dim() == 1:
            target = binary_targets(
                check_labels(target, pred, max_label=num_classes), num_classes)
        else:
            check_binary_targets(target, pred)
        check_weight(weight, pred)
        loss = sigmoid_focal_poly_loss(pred, target, self.gamma, self.alpha,
                                       self.poly_terms(), self.alpha_on_poly,
                                       self.activated)
        return self.loss_weight * weight_reduce_elementwise_loss(
            loss, weight, reduction, avg_factor)

    def extra_repr(self) -> str:
        return (f'gamma={self.gamma}, alpha={self.alpha}, '
                f'epsilon={self.epsilon}, alpha_on_poly={self.alpha_on_poly}')


@MODELS.register_module()
class PolyFocalLoss(SigmoidFocalPolyLossBase):
    r"""Poly-1 focal loss: ``FL + epsilon * alpha_t * (1-pt)^(gamma+1)``.

    PolyLoss Eq. 2 / Table 6 with the alpha balance of RetinaNet; with
    ``alpha_on_poly=False`` the polynomial is not alpha-weighted (as some
    ports do). ``epsilon = 0`` is MMDetection's ``FocalLoss``.

    Args:
        use_sigmoid (bool): Must be True. Defaults to True.
        gamma (float): Focusing parameter. Defaults to 2.0.
        alpha (float, optional): Positive/negative balance. Defaults to 0.25.
        epsilon (float): Coefficient of ``(1-pt)^(gamma+1)``, ``>= -1``.
            Defaults to -1.0.
        alpha_on_poly (bool): Weight the polynomial by ``alpha_t``.
            Defaults to True.
        reduction (str): ``none``, ``mean`` or ``sum``. Defaults to 'mean'.
        loss_weight (float): Defaults to 1.0.
        activated (bool): Inputs are probabilities. Defaults to False.
    """

    def poly_terms(self) -> PolyTerms:
        return ((self.gamma + 1, self.epsilon), )


@MODELS.register_module()
class Poly1StarFocalLoss(SigmoidFocalPolyLossBase):
    r"""Poly-1* focal loss:
    ``FL - alpha_t (1-pt)^(gamma+1) + epsilon * alpha_t (1-pt)^(gamma+2)``.

    The first focal polynomial is dropped (Poly-1 at ``epsilon_1 = -1``)
    and the new leading one is tuned (PolyLoss Table 7: ``epsilon = -0.4``
    for vehicles, ``0.2`` for pedestrians). Arguments as
    :class:`PolyFocalLoss`, except ``epsilon`` defaults to 0.0 (focal loss
    with its first polynomial dropped).
    """

    def __init__(self, *args, epsilon: float = 0.0, **kwargs) -> None:
        super().__init__(*args, epsilon=epsilon, **kwargs)

    def poly_terms(self) -> PolyTerms:
        return ((self.gamma + 1, -1.0), (self.gamma + 2, self.epsilon))


@MODELS.register_module()
class PolyNCrossEntropyLoss(nn.Module):
    r"""Poly-N cross-entropy: ``CE + sum_{j=1..N} epsilon_j (1-Pt)^j``.

    PolyLoss Eq. 6. Softmax over the ``K`` classes of ``cls_score`` (a RoI
    head's ``C + 1``), or per-class binary cross-entropy with
    ``use_sigmoid=True``. Takes the arguments of MMDetection's
    ``CrossEntropyLoss``; with every ``epsilon_j = 0`` it equals it.

    Args:
        use_sigmoid (bool): Binary form. Defaults to False.
        epsilons (Sequence[float]): ``epsilon_1 .. epsilon_N``; each
            ``>= -1``. Defaults to (-1.0,).
        label_smoothing (float): Softmax form only, in ``[0, 1)``.
            Defaults to 0.0.
        class_weight (list[float], optional): Per-class weight (softmax:
            of the true class; binary: of positives, like ``pos_weight``).
        ignore_index (int, optional): Label to ignore. Defaults to None.
        reduction (str): Defaults to 'mean'.
        loss_weight (float): Defaults to 1.0.
        avg_non_ignore (bool): Average over non-ignored samples only.
            Defaults to False.
    """

    def __init__(self,
                 use_sigmoid: bool = False,
                 epsilons: Sequence[float] = (-1.0, ),
                 label_smoothing: float = 0.0,
                 class_weight: Optional[Sequence[float]] = None,
                 ignore_index: Optional[int] = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 avg_non_ignore: bool = False) -> None:
        super().__init__()
        check_reduction(reduction, allow_none=False)
        if not 0 <= label_smoothing < 1:  # also rejects NaN
            raise ValueError(
                f'label_smoothing must be in [0, 1), got {label_smoothing}')
        if use_sigmoid and label_smoothing > 0:
            raise ValueError('label_smoothing is defined for the softmax '
                             'form only (use_sigmoid=False)')
        if len(epsilons) == 0:
            raise ValueError('epsilons must hold at least one coefficient')
        self.use_sigmoid = use_sigmoid
        self.epsilons = tuple(
            check_epsilon(eps, f'epsilons[{j}]')
            for j, eps in enumerate(epsilons))
        self.label_smoothing = float(label_smoothing)
        if class_weight is not None:
            checked = [
                check_number(w, f'class_weight[{k}]', low=0.0)
                for k, w in enumerate(class_weight)
            ]
            class_weight = torch.tensor(checked, dtype=torch.float)
        # A buffer moves with the model: no host-to-device copy per call.
        self.register_buffer('class_weight', class_weight, persistent=False)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.loss_weight = check_number(loss_weight, 'loss_weight', low=0.0)
        self.avg_non_ignore = avg_non_ignore

    def poly_terms(self) -> PolyTerms:
        return tuple((j, eps) for j, eps in enumerate(self.epsilons, start=1))

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                ignore_index: Optional[int] = None,
                **kwargs) -> Tensor:
        """
        Args:
            cls_score (Tensor): Logits ``(N, K)``.
            label (Tensor): Labels ``(N,)``: in ``[0, K)`` for softmax; in
                ``[0, K]`` for sigmoid (``K`` = background, all negative).
            weight (Tensor, optional): ``(N,)``, or ``(N, K)`` for sigmoid.
            avg_factor (float, optional): Divisor for ``mean``.
            reduction_override (str, optional): ``none``, ``mean``, ``sum``.
            ignore_index (int, optional): Overrides the configured one.
        """
        check_reduction(reduction_override, allow_none=True)
        reduction = reduction_override or self.reduction
        ignore_index = self.ignore_index if ignore_index is None \
            else ignore_index
        check_logits(cls_score, 'cls_score')
        num_classes = cls_score.size(1)
        label = check_labels(
            label,
            cls_score,
            max_label=num_classes if self.use_sigmoid else num_classes - 1,
            ignore_index=ignore_index,
            name='label',
            pred_name='cls_score')
        check_weight(weight, cls_score)
        class_weight = self.class_weight
        if class_weight is not None and class_weight.numel() != num_classes:
            raise ValueError(f'class_weight has {class_weight.numel()} '
                             f'entries for {num_classes} classes')
        valid = torch.ones_like(label, dtype=torch.bool) \
            if ignore_index is None else label != ignore_index
        if self.use_sigmoid:
            loss = self._binary_loss(cls_score, label, valid, class_weight)
        else:
            loss = softmax_focal_poly_loss(cls_score, label, 0.0,
                                           self.poly_terms(),
                                           self.label_smoothing, class_weight,
                                           ignore_index)
        if avg_factor is None and self.avg_non_ignore and reduction == 'mean':
            # A tensor: reading the count back would sync with the device.
            avg_factor = valid.sum() * (num_classes if self.use_sigmoid else 1)
        return self.loss_weight * weight_reduce_elementwise_loss(
            loss, weight, reduction, avg_factor)

    def _binary_loss(self, cls_score: Tensor, label: Tensor, valid: Tensor,
                     class_weight: Optional[Tensor]) -> Tensor:
        """Per-class BCE + polynomial; labels ``>= K`` are background and
        ignored samples are zeroed, as MMDetection's binary CE does."""
        num_classes = cls_score.size(1)
        safe_label = torch.where(valid, label,
                                 torch.full_like(label, num_classes))
        target = binary_targets(safe_label, num_classes)
        loss = sigmoid_focal_poly_loss(
            cls_score,
            target,
            gamma=0.0,
            alpha=None,
            poly_terms=self.poly_terms())
        if class_weight is not None:  # pos_weight: scales positives only
            loss = loss * torch.where(target, class_weight,
                                      torch.ones_like(class_weight))
        return loss * valid[:, None]


@MODELS.register_module()
class Poly1CrossEntropyLoss(PolyNCrossEntropyLoss):
    r"""Poly-1 cross-entropy: ``CE + epsilon * (1 - Pt)`` (PolyLoss Eq. 7).

    For Mask R-CNN's box classifier (softmax over ``C + 1`` classes; the
    paper's Table 5 uses ``epsilon = -1``). Arguments as
    :class:`PolyNCrossEntropyLoss` with a single ``epsilon`` (``>= -1``,
    defaults to -1.0).
    """

    def __init__(self,
                 use_sigmoid: bool = False,
                 epsilon: float = -1.0,
                 label_smoothing: float = 0.0,
                 class_weight: Optional[Sequence[float]] = None,
                 ignore_index: Optional[int] = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 avg_non_ignore: bool = False) -> None:
        super().__init__(
            use_sigmoid=use_sigmoid,
            epsilons=(check_epsilon(epsilon), ),
            label_smoothing=label_smoothing,
            class_weight=class_weight,
            ignore_index=ignore_index,
            reduction=reduction,
            loss_weight=loss_weight,
            avg_non_ignore=avg_non_ignore)

    @property
    def epsilon(self) -> float:
        return self.epsilons[0]
