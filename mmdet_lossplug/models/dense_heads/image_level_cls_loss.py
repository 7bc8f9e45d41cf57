"""Give an anchor head's classification loss every FPN level of an image
at once.

MMDetection's ``AnchorHead.loss_by_feat`` calls ``loss_cls`` once per
level (``loss_by_feat_single``) with that level's anchors flattened. A loss
that pools over an image, like DR loss, needs all levels together. The
mixin runs the parent's ``loss_by_feat`` unchanged, so targets, sampling and
the box regression loss are exactly the parent's, with ``loss_cls`` swapped
for a collector of its per-level inputs; then it calls the real loss once
on ``(B, A_total, C)``.
"""
from contextlib import contextmanager
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor


class _LevelInputs(nn.Module):
    """Stands in for ``loss_cls`` during the parent's per-level loop:
    records what each level passes and contributes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.levels: List[Tuple[Tensor, Tensor, Tensor]] = []

    def forward(self, cls_score, labels, label_weights, **kwargs) -> Tensor:
        self.levels.append((cls_score, labels, label_weights))
        return cls_score.new_zeros(())

    def per_image(self, batch: int) -> Tuple[Tensor, Tensor, Tensor]:
        """``(B, A, C)`` scores, ``(B, A)`` labels and weights; a level's
        rows are image-major (``permute(0, 2, 3, 1).reshape(-1, C)``)."""
        scores, labels, weights = zip(*self.levels)
        num_classes = scores[0].size(-1)
        return (torch.cat([s.reshape(batch, -1, num_classes) for s in scores],
                          dim=1),
                torch.cat([t.reshape(batch, -1) for t in labels], dim=1),
                torch.cat([w.reshape(batch, -1) for w in weights], dim=1))


class ImageLevelClsLossMixin:
    """Mix into an ``AnchorHead`` subclass (before it in the bases) to call
    ``loss_cls(cls_score (B, A, C), labels (B, A), label_weights (B, A))``
    once per batch over all levels of each image."""

    def __init__(self, *args, **kwargs) -> None:
        if 'loss_cls' in kwargs:  # anchor heads size the classifier by it
            kwargs['loss_cls'] = dict(kwargs['loss_cls'])
            kwargs['loss_cls'].setdefault('use_sigmoid', True)
        super().__init__(*args, **kwargs)

    @contextmanager
    def _collect_level_inputs(self):
        real_loss, collector = self.loss_cls, _LevelInputs()
        self.loss_cls = collector
        try:
            yield collector
        finally:
            self.loss_cls = real_loss

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_preds: List[Tensor],
                     batch_gt_instances,
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: Optional[list] = None) -> dict:
        with self._collect_level_inputs() as levels:
            losses = super().loss_by_feat(
                cls_scores,
                bbox_preds,
                batch_gt_instances,
                batch_img_metas,
                batch_gt_instances_ignore=batch_gt_instances_ignore)
        losses['loss_cls'] = self.loss_cls(
            *levels.per_image(len(batch_img_metas)))
        return losses
