r"""Focal loss with a sample-dependent gamma (Mukhoti et al., *Calibrating
Deep Neural Networks using Focal Loss*, NeurIPS 2020: FLSD / "FLA").

Each sample's gamma is picked from its detached ``pt`` by thresholds:
FLA-53 is ``gamma = 5`` for ``pt < 0.2`` and ``3`` above; FLA-532 adds
``2`` above ``0.5``. The loss itself is the shared focal math of
:mod:`.focal_poly` with a gamma tensor, so it is vectorised and equals plain
focal loss wherever every ``pt`` falls in one band.
"""
import math
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from ...input_checks import (check_labels, check_logits, check_number,
                             check_reduction, check_weight)
from .focal_poly import (binary_targets, sigmoid_focal_poly_loss,
                         softmax_focal_poly_loss)
from .reduction import weight_reduce_elementwise_loss


def focal_gamma_for_threshold(p0: float) -> float:
    r"""The gamma for which focal loss's gradient matches cross-entropy's at
    probability ``p0`` (Mukhoti et al., Proposition 2): the solution of
    ``g(p0, gamma) = 1`` with
    ``g(p, gamma) = (1-p)^gamma - gamma p (1-p)^(gamma-1) ln p``:

    .. math::

        \gamma^* = \frac{a}{b} + \frac{1}{\ln a}
                   W_{-1}\!\left(-\frac{a^{1 - a/b} \ln a}{b}\right),
        \quad a = 1 - p_0,\ b = p_0 \ln p_0.

    ``focal_gamma_for_threshold(0.2) = 4.85``, ``(0.25) = 3.07``.
    """
    from scipy.special import lambertw
    if not 0 < p0 < 0.5:
        raise ValueError(f'p0 must be in (0, 0.5), got {p0}')
    a, b = 1 - p0, p0 * math.log(p0)
    w = lambertw(-a**(1 - a / b) * math.log(a) / b, k=-1)
    gamma = a / b + w.real / math.log(a)
    if abs(w.imag) > 1e-9 or not math.isfinite(gamma):
        raise ValueError(f'no real gamma solves g({p0}, gamma) = 1')
    return float(gamma)


@MODELS.register_module()
class AdaptiveFocalLoss(nn.Module):
    """Focal loss whose gamma depends on each sample's detached ``pt``.

    Args:
        use_sigmoid (bool): Sigmoid form (dense heads: ``pred (N, C)``,
            labels in ``[0, C]``, ``pt`` per class) or softmax form (RoI
            heads: ``pred (N, C + 1)``, ``pt`` of the true class). Defaults
            to False.
        gammas (Sequence[float] | str): One gamma per band of ``pt``, from
            low to high; ``'auto'`` uses ``(focal_gamma_for_threshold(p0),
            3.0)`` with threshold ``p0`` (FLSD-53's construction). Defaults
            to (5.0, 3.0) (FLA-53).
        thresholds (Sequence[float]): Band edges, increasing, one fewer than
            ``gammas``. Defaults to (0.2,).
        p0 (float, optional): Threshold of ``gammas='auto'``.
        alpha (float, optional): Sigmoid form only: positive/negative
            balance as in RetinaNet. Defaults to None.
        reduction (str): Defaults to 'mean'.
        loss_weight (float): Defaults to 1.0.
    """

    def __init__(self,
                 use_sigmoid: bool = False,
                 gammas: Union[Sequence[float], str] = (5.0, 3.0),
                 thresholds: Sequence[float] = (0.2, ),
                 alpha: Optional[float] = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 p0: Optional[float] = None) -> None:
        super().__init__()
        check_reduction(reduction, allow_none=False)
        if isinstance(gammas, str) and gammas != 'auto':
            raise ValueError("gammas must be a sequence of numbers or 'auto', "
                             f'got {gammas!r}')
        if gammas == 'auto':
            if p0 is None:
                raise ValueError("gammas='auto' needs p0")
            gammas, thresholds = (focal_gamma_for_threshold(p0), 3.0), (p0, )
        gammas = tuple(
            check_number(g, f'gammas[{k}]', low=0.0)
            for k, g in enumerate(gammas))
        if isinstance(thresholds, str) or not isinstance(thresholds, Sequence):
            raise TypeError('thresholds must be a sequence of numbers, got '
                            f'{thresholds!r}')
        thresholds = tuple(
            check_number(t, f'thresholds[{k}]')
            for k, t in enumerate(thresholds))
        if len(gammas) != len(thresholds) + 1:
            raise ValueError(f'{len(gammas)} gammas need '
                             f'{len(gammas) - 1} thresholds, got {thresholds}')
        if list(thresholds) != sorted(thresholds) or not all(
                0 < t < 1 for t in thresholds):  # also rejects NaN
            raise ValueError('thresholds must increase within (0, 1), got '
                             f'{thresholds}')
        if alpha is not None and not use_sigmoid:
            raise ValueError('alpha is defined for the sigmoid form only')
        self.use_sigmoid = use_sigmoid
        # Python floats (also for 'auto': Lambert W runs here, once), which
        # FocalGammaScheduleHook may replace between iterations.
        self.gammas = gammas
        self.thresholds = thresholds
        self.alpha = None if alpha is None else check_number(
            alpha, 'alpha', low=0.0, high=1.0)
        self.reduction = reduction
        self.loss_weight = check_number(loss_weight, 'loss_weight', low=0.0)

    def gamma_of(self, pt: Tensor) -> Tensor:
        """Each sample's gamma from its (detached) ``pt``: ``gammas[k]`` for
        ``thresholds[k-1] <= pt < thresholds[k]``. Built from Python
        scalars, so no host-to-device copy per call."""
        pt = pt.detach()
        gamma = torch.full_like(pt, self.gammas[0])
        for threshold, higher in zip(self.thresholds, self.gammas[1:]):
            gamma = torch.where(pt >= threshold, higher, gamma)
        return gamma

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> Tensor:
        check_reduction(reduction_override, allow_none=True)
        reduction = reduction_override or self.reduction
        check_logits(pred)
        num_classes = pred.size(1)
        target = check_labels(
            target,
            pred,
            max_label=num_classes if self.use_sigmoid else num_classes - 1)
        check_weight(weight, pred)
        # The focal functions hand gamma_of the pt they compute anyway.
        if self.use_sigmoid:
            loss = sigmoid_focal_poly_loss(pred,
                                           binary_targets(target, num_classes),
                                           self.gamma_of, self.alpha)
        else:
            loss = softmax_focal_poly_loss(pred, target, self.gamma_of)
        return self.loss_weight * weight_reduce_elementwise_loss(
            loss, weight, reduction, avg_factor)

    def extra_repr(self) -> str:
        return (f'gammas={self.gammas}, thresholds={self.thresholds}, '
                f'use_sigmoid={self.use_sigmoid}, alpha={self.alpha}')
