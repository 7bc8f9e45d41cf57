"""Give an anchor head's classification loss every FPN level of an image
at once.

MMDetection's ``AnchorHead.loss_by_feat`` computes targets for all levels,
then calls ``loss_by_feat_single`` once per level, which calls ``loss_cls``
with that level's anchors flattened. A loss that pools over an image, like
DR loss, needs all levels together. The mixin's ``loss_by_feat_single``
computes the level's box loss as ``AnchorHead``'s does and, instead of a
classification loss, returns the level's classification inputs, which
``AnchorHead.loss_by_feat`` hands back under ``loss_cls``; the mixin's
``loss_by_feat`` then calls ``loss_cls`` once on ``(B, A_total, C)``.
Targets, sampling and ``avg_factor`` stay the parent's.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.structures.bbox import get_box_tensor
from torch import Tensor

LevelClsInputs = Tuple[Tensor, Tensor, Tensor]


class ImageLevelClsLossMixin:
    """Mix into an ``AnchorHead`` subclass that keeps ``AnchorHead``'s
    ``loss_by_feat`` (e.g. ``RetinaHead``), before it in the bases, to call
    ``loss_cls(cls_score (B, A, C), labels (B, A), label_weights (B, A))``
    once per batch over all levels of each image."""

    def __init__(self, *args, **kwargs) -> None:
        if 'loss_cls' in kwargs:  # anchor heads size the classifier by it
            kwargs['loss_cls'] = dict(kwargs['loss_cls'])
            kwargs['loss_cls'].setdefault('use_sigmoid', True)
        super().__init__(*args, **kwargs)

    def loss_by_feat_single(self, cls_score: Tensor, bbox_pred: Tensor,
                            anchors: Tensor, labels: Tensor,
                            label_weights: Tensor, bbox_targets: Tensor,
                            bbox_weights: Tensor,
                            avg_factor: int) -> Tuple[LevelClsInputs, Tensor]:
        """One level: its classification inputs per image, ``(B, A_l, C)``
        scores and ``(B, A_l)`` labels and weights (rows image-major, as
        ``AnchorHead`` flattens them), and its box loss."""
        batch = cls_score.size(0)
        scores = cls_score.permute(0, 2, 3, 1)
        level_cls_inputs = (scores.reshape(batch, -1, self.cls_out_channels),
                            labels.reshape(batch, -1),
                            label_weights.reshape(batch, -1))
        bbox_targets = bbox_targets.reshape(-1, bbox_targets.size(-1))
        bbox_weights = bbox_weights.reshape(-1, bbox_weights.size(-1))
        bbox_pred = bbox_pred.permute(0, 2, 3, 1)
        bbox_pred = bbox_pred.reshape(-1, self.bbox_coder.encode_size)
        if self.reg_decoded_bbox:
            anchors = anchors.reshape(-1, anchors.size(-1))
            bbox_pred = get_box_tensor(
                self.bbox_coder.decode(anchors, bbox_pred))
        loss_bbox = self.loss_bbox(
            bbox_pred, bbox_targets, bbox_weights, avg_factor=avg_factor)
        return level_cls_inputs, loss_bbox

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     batch_gt_instances,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: Optional[list] = None) -> dict:
        losses = super().loss_by_feat(
            cls_scores,
            bbox_preds,
            batch_gt_instances,
            batch_img_metas,
            batch_gt_instances_ignore=batch_gt_instances_ignore)
        # AnchorHead.loss_by_feat returns what loss_by_feat_single gave
        # first, here each level's classification inputs, as 'loss_cls'.
        losses['loss_cls'] = self.loss_cls(*concat_levels(losses['loss_cls']))
        return losses


def concat_levels(levels: Sequence[LevelClsInputs]) -> LevelClsInputs:
    """Scores, labels and weights of every level of each image, joined
    along the anchor axis."""
    return tuple(torch.cat(parts, dim=1) for parts in zip(*levels))
