"""Give a dense head's classification loss every location of every FPN
level of each image at once.

Dense heads whose classification targets are per location (a label in
``[0, C]`` and a weight per anchor or point) call their classification
loss on flattened rows: ``AnchorHead`` (RetinaNet) and ``ATSSHead`` once
per FPN level, on that level's rows image after image; ``FCOSHead`` once,
on the levels one after another, each image after image. A loss that pools
over an image, like DR loss, needs each image's rows of all levels
together, which none of these calls gives it.

``ImageLevelClsLossMixin`` runs the head's own ``loss_by_feat`` with its
``loss_cls`` replaced by a recorder of the calls' inputs, regroups the
recorded rows into ``(B, A, C)`` per image (``A`` every location of every
level) and calls ``loss_cls`` once. Targets, assignment, the box and
centerness losses and their normalisation stay the head's, untouched.
"""
from contextlib import contextmanager
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import torch
from mmdet.models.dense_heads import AnchorHead, ATSSHead, FCOSHead
from torch import Tensor, nn

from ..losses import DRLoss

# Losses that take (B, A, C) scores, (B, A) labels and weights of whole
# images and no avg_factor. Any other loss is per location: it gets the
# regrouped rows flattened back to (B * A, C), with the head's avg_factor,
# and so computes what it computes in the stock head.
IMAGE_LEVEL_LOSSES = (DRLoss, )

# Heads whose calls to loss_cls the regrouping has been checked against,
# and the methods that make those calls: a subclass that overrides one of
# them may call loss_cls differently, so it is not accepted.
REGROUPABLE_HEADS = {
    AnchorHead: ('loss_by_feat', 'loss_by_feat_single'),
    ATSSHead: ('loss_by_feat', 'loss_by_feat_single'),
    FCOSHead: ('loss_by_feat', ),
}
IMAGE_LEVEL_HEADS = ('DRRetinaHead', 'DRATSSHead', 'DRFCOSHead')


class ClsLossCall(NamedTuple):
    """The inputs of one call of a head's classification loss."""
    cls_score: Tensor  # (rows, C)
    labels: Tensor  # (rows, )
    label_weights: Optional[Tensor]  # (rows, ), None: every row counts
    avg_factor: Optional[float]


class ClsLossRecorder(nn.Module):
    """Stands in for ``loss_cls`` while the head computes its losses:
    keeps each call's inputs and returns a zero placeholder, which the
    mixin replaces by the loss of the regrouped inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: List[ClsLossCall] = []

    def forward(self,
                cls_score: Tensor,
                labels: Tensor,
                label_weights: Optional[Tensor] = None,
                avg_factor: Optional[float] = None) -> Tensor:
        self.calls.append(
            ClsLossCall(cls_score, labels, label_weights, avg_factor))
        return cls_score.new_zeros(())


class ImageLevelClsLossMixin:
    """Mix into a dense head, before it in the bases, to call
    ``loss_cls(cls_score (B, A, C), labels (B, A), label_weights (B, A))``
    once per batch over all levels of each image.

    The head must be an ``AnchorHead`` (e.g. ``RetinaHead``), ``ATSSHead``
    or ``FCOSHead`` subclass that keeps their loss methods; any other fails
    at construction. A per-location loss (e.g. ``FocalLoss``) in such a head
    gets the same rows, flattened, with the head's ``avg_factor``.
    """

    def __init__(self, *args, **kwargs) -> None:
        check_regroupable(type(self))
        if 'loss_cls' in kwargs:  # heads size the classifier by use_sigmoid
            kwargs['loss_cls'] = dict(kwargs['loss_cls'])
            kwargs['loss_cls'].setdefault('use_sigmoid', True)
        super().__init__(*args, **kwargs)

    def loss_by_feat(self, cls_scores: List[Tensor], *args, **kwargs) -> dict:
        """The head's own losses, with ``loss_cls`` computed once on the
        per-image view of every level's classification inputs."""
        with recording_cls_loss(self) as recorder:
            losses = super().loss_by_feat(cls_scores, *args, **kwargs)
        scores, labels, weights = regroup_per_image(recorder.calls, cls_scores,
                                                    self.cls_out_channels)
        if isinstance(self.loss_cls, IMAGE_LEVEL_LOSSES):
            losses['loss_cls'] = self.loss_cls(scores, labels, weights)
        else:
            losses['loss_cls'] = self.loss_cls(
                scores.flatten(0, 1),
                labels.flatten(),
                None if weights is None else weights.flatten(),
                # every call of a regroupable head passes the same one
                avg_factor=recorder.calls[0].avg_factor)
        return losses


def check_regroupable(head_type: type) -> None:
    """Raise ``TypeError`` unless ``head_type`` computes its losses with the
    methods of a head in ``REGROUPABLE_HEADS``."""
    # The mixin wraps loss_by_feat, so the head's own is the one after it.
    inner = super(ImageLevelClsLossMixin, head_type)
    for head, methods in REGROUPABLE_HEADS.items():
        if issubclass(head_type, head) and all(
                getattr(inner if name == 'loss_by_feat' else head_type, name)
                is getattr(head, name) for name in methods):
            return
    raise TypeError(
        f'{head_type.__name__} cannot give an image-level classification '
        'loss (e.g. DRLoss) all FPN levels of each image: '
        'ImageLevelClsLossMixin regroups the loss_cls calls of '
        f'{", ".join(head.__name__ for head in REGROUPABLE_HEADS)} and their '
        'subclasses that keep their loss_by_feat; use one of '
        f'{", ".join(IMAGE_LEVEL_HEADS)}')


@contextmanager
def recording_cls_loss(head: nn.Module) -> Iterator[ClsLossRecorder]:
    """``head.loss_cls`` replaced by a recorder for the ``with`` block."""
    loss_cls = head.loss_cls
    head.loss_cls = recorder = ClsLossRecorder()
    try:
        yield recorder
    finally:
        head.loss_cls = loss_cls


def regroup_per_image(
        calls: Sequence[ClsLossCall], cls_scores: Sequence[Tensor],
        num_classes: int) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """``(B, A, C)`` scores and ``(B, A)`` labels and weights from the
    recorded rows, which run level after level (the levels of
    ``cls_scores``, ``(B, anchors * C, H, W)`` each) and, within a level,
    image after image.

    Weights are None when no call passed any (every row counts).
    """
    num_imgs = cls_scores[0].size(0)
    level_sizes = [
        score[0].numel() // num_classes * num_imgs for score in cls_scores
    ]
    num_rows = sum(call.labels.numel() for call in calls)
    if num_rows != sum(level_sizes):
        raise RuntimeError(
            f'loss_cls was called on {num_rows} rows in all, but the '
            f'{len(cls_scores)} levels of cls_scores have {sum(level_sizes)} '
            'locations: this head does not call its loss once per location')

    def per_image(rows: Tensor) -> Tensor:
        levels = rows.split(level_sizes)
        return torch.cat([
            level.reshape(num_imgs, -1, *level.shape[1:]) for level in levels
        ], 1)

    scores = per_image(torch.cat([call.cls_score for call in calls]))
    labels = per_image(torch.cat([call.labels.reshape(-1) for call in calls]))
    if calls[0].label_weights is None:
        return scores, labels, None
    weights = torch.cat([call.label_weights.reshape(-1) for call in calls])
    return scores, labels, per_image(weights)
