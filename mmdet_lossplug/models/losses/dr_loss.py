r"""DR loss: distributional ranking of each image's sigmoid scores.

Qian et al., *DR Loss: Improving Object Detection by Distributional
Ranking*, CVPR 2020. Per image ``i`` (every anchor of every FPN level):

.. math::

    \ell_i = \ell\left(E^-_i - E^+_i + \gamma\right), \qquad
    \mathcal{L} = \tau \cdot \frac{1}{B} \sum_i \ell_i,

with ``E-``/``E+`` the expectations of the negatives'/positives' scores
under their KL-regularised re-weightings (:mod:`mmdet_lossplug.ops`) and
``l`` the logistic ``log(1 + exp(L z)) / L`` (Eq. 8), quadratic (Eq. 7) or
hinge loss. ``NegOnly`` (Table 3) ranks ``E-`` against every positive.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from ...input_checks import (check_finite, check_integer_labels, check_number,
                             check_same_device)
from ...ops import dr_expectation
from ...ops.dr_expectation import check_impl
from ...precision import upcast_low_precision

SMOOTHS = ('logistic', 'quadratic', 'hinge')
PAIRS = ('dr', 'neg_only')
POOLS = ('image', 'batch')
# The smallest temperature the loss accepts: scores p / lam up to 1000 keep
# the softmax weights' differences resolvable in float32 (the paper's
# lambdas are above 0.03; much smaller ones make the expectations a hard
# max). The op itself takes any lam down to ops' MIN_LAMBDA_FLOAT32.
MIN_LOSS_LAMBDA = 1e-3
# The error for a call that is not one per image of whole images. It names
# the heads of dense_heads.image_level_cls_loss.IMAGE_LEVEL_HEADS (written
# out: losses do not import the heads, which import them).
NEEDS_IMAGE_LEVEL_HEAD = (
    'DRLoss ranks all anchors of each image together and takes '
    'cls_score (B, A, C), labels (B, A), label_weights (B, A) without '
    'avg_factor; a plain dense head calls its loss once per FPN level (or '
    'on all images mixed). Use a head that gives it every location of each '
    "image: bbox_head=dict(type='DRRetinaHead' | 'DRATSSHead' | "
    "'DRFCOSHead', ...), or mix "
    'mmdet_lossplug.models.dense_heads.ImageLevelClsLossMixin into your head')


def ranking_loss(z: Tensor, smooth: str, L: float, rho: float) -> Tensor:
    """The pair loss ``l(z)`` of DR loss, elementwise."""
    if smooth == 'logistic':
        return F.softplus(L * z) / L
    if smooth == 'quadratic':
        middle = (z + rho)**2 / (4 * rho)
        return torch.where(z >= rho, z,
                           torch.where(z > -rho, middle, torch.zeros_like(z)))
    return z.clamp(min=0)  # hinge


@MODELS.register_module()
class DRLoss(nn.Module):
    """Distributional ranking loss over all anchors of each image.

    Args:
        lam_pos (float): Temperature ``lambda+`` of the positives'
            distribution, ``1 / ln(h+)``, finite and ``>= 1e-3``. Defaults
            to 1.0 (``h+ = e``).
        lam_neg (float): Temperature ``lambda-`` of the negatives',
            ``0.1 / ln(h-)``, finite and ``>= 1e-3``. Defaults to
            ``0.1 / ln(3.5)``.
        L (float): Smoothness of the logistic loss, finite and ``> 0``.
            Defaults to 6.0.
        margin (float): Margin ``gamma`` between the expectations, finite.
            Defaults to 0.5.
        loss_weight (float): The paper's ``tau``, finite and ``>= 0``; the
            loss is ``loss_weight * mean over images``. Defaults to 4.0.
        smooth (str): ``logistic``, ``quadratic`` or ``hinge``.
        rho (float): Width of the quadratic smoothing, in ``(0, 1]`` (the
            expectations, hence ``E- - E+``, lie in ``[0, 1]`` and
            ``[-1, 1]``). Defaults to 0.5.
        pair (str): ``dr`` (``l(E- - E+ + margin)``) or ``neg_only``
            (``mean over positives of l(E- - p + margin)``).
        pool (str): ``image`` (one distribution per image, the paper's) or
            ``batch`` (one over every image of the batch, as the official
            code does on each GPU).
        impl (str): ``auto`` (the compiled op if built, else the
            reference), ``op`` or ``reference``.
        use_sigmoid (bool): Must be True; anchor heads read it from the
            config to size their classifier.
    """

    def __init__(self,
                 lam_pos: float = 1.0,
                 lam_neg: float = 0.1 / math.log(3.5),
                 L: float = 6.0,
                 margin: float = 0.5,
                 loss_weight: float = 4.0,
                 smooth: str = 'logistic',
                 rho: float = 0.5,
                 pair: str = 'dr',
                 pool: str = 'image',
                 impl: str = 'auto',
                 use_sigmoid: bool = True) -> None:
        super().__init__()
        for name, value, allowed in (('smooth', smooth, SMOOTHS),
                                     ('pair', pair, PAIRS), ('pool', pool,
                                                             POOLS)):
            if value not in allowed:
                raise ValueError(
                    f'{name} must be one of {allowed}, got {value!r}')
        if not use_sigmoid:
            raise ValueError('DRLoss ranks sigmoid scores; '
                             'use_sigmoid=False is not supported')
        self.impl = check_impl(impl)
        self.lam_pos = check_number(lam_pos, 'lam_pos', low=MIN_LOSS_LAMBDA)
        self.lam_neg = check_number(lam_neg, 'lam_neg', low=MIN_LOSS_LAMBDA)
        self.L = check_number(L, 'L', low=0.0, low_open=True)
        self.margin = check_number(margin, 'margin')
        self.loss_weight = check_number(loss_weight, 'loss_weight', low=0.0)
        self.smooth = smooth
        self.rho = check_number(rho, 'rho', low=0.0, high=1.0, low_open=True)
        self.pair = pair
        self.pool = pool
        self.use_sigmoid = use_sigmoid

    def forward(self,
                cls_score: Tensor,
                labels: Tensor,
                label_weights: Optional[Tensor] = None,
                avg_factor: Optional[float] = None) -> Tensor:
        """
        Args:
            cls_score (Tensor): ``(B, A, C)`` logits of all levels of each
                image, concatenated. A NaN/Inf one makes the loss NaN.
            labels (Tensor): ``(B, A)`` integers in ``[0, C]``, ``C`` =
                background.
            label_weights (Tensor, optional): ``(B, A)``, finite; ``<= 0``
                ignores an anchor.
            avg_factor: Must be None: DR loss has no normaliser. Accepted
                only to name the right head when a per-level anchor head
                passes it.

        Returns:
            Tensor: Scalar ``loss_weight * mean_i loss_i`` (float32).
        """
        if cls_score.dim() != 3 or avg_factor is not None:
            raise ValueError(
                f'{NEEDS_IMAGE_LEVEL_HEAD} (got cls_score of shape '
                f'{tuple(cls_score.shape)}' +
                ('' if avg_factor is None else ' and an avg_factor') + ')')
        check_same_device(labels, cls_score, 'labels', 'cls_score')
        check_integer_labels(labels, 'labels')
        labels = labels.long()
        if label_weights is not None:
            check_same_device(label_weights, cls_score, 'label_weights',
                              'cls_score')
            if label_weights.is_floating_point():
                check_finite(label_weights, 'label_weights')
        if self.pool == 'batch':
            cls_score = cls_score.reshape(1, -1, cls_score.size(-1))
            labels = labels.reshape(1, -1)
            if label_weights is not None:
                label_weights = label_weights.reshape(1, -1)
        e_neg, e_pos = dr_expectation(cls_score, labels, label_weights,
                                      self.lam_pos, self.lam_neg, self.impl)
        if self.pair == 'dr':
            per_image = self._pair_loss(e_neg - e_pos + self.margin)
        else:
            per_image = self._neg_only(cls_score, labels, label_weights, e_neg)
        if per_image.numel() == 0:
            return cls_score.sum() * 0
        return self.loss_weight * per_image.mean()

    def _pair_loss(self, z: Tensor) -> Tensor:
        return ranking_loss(z, self.smooth, self.L, self.rho)

    def _neg_only(self, cls_score: Tensor, labels: Tensor,
                  label_weights: Optional[Tensor], e_neg: Tensor) -> Tensor:
        """``mean_{j in P_i} l(E-_i - p_j + margin)``; an image without
        positives ranks ``E-`` against ``p = 1`` (``E+ = 1`` of DR)."""
        num_classes = cls_score.size(-1)
        # An anchor has at most one positive class: its label's score.
        score = upcast_low_precision(cls_score).gather(
            -1,
            labels.clamp(max=num_classes - 1)[..., None]).squeeze(-1)
        pos = labels < num_classes
        if label_weights is not None:
            pos = pos & (label_weights > 0)
        pair = self._pair_loss(e_neg[:, None] - score.sigmoid() + self.margin)
        num_pos = pos.sum(dim=1)
        mean_pos = (pair * pos).sum(dim=1) / num_pos.clamp(min=1)
        no_pos = self._pair_loss(e_neg - 1 + self.margin)
        return torch.where(num_pos > 0, mean_pos, no_pos)

    def extra_repr(self) -> str:
        return (f'lam_pos={self.lam_pos:.4g}, lam_neg={self.lam_neg:.4g}, '
                f'L={self.L}, margin={self.margin}, smooth={self.smooth}, '
                f'pair={self.pair}, pool={self.pool}, impl={self.impl}')
