"""The rows of a loss comparison: one config, a baseline loss named once,
and what each other row changes in the config's model. A new comparison
(another head, another baseline) is another ``Comparison``, not more code.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Dict

from .data import REPO_ROOT


@dataclass(frozen=True)
class Comparison:
    """Losses trained on one config.

    Attributes:
        config (str): The config every row starts from.
        rows (dict): Row name -> what it merges into ``cfg.model`` (with
            ``_delete_`` where a loss replaces another); the first is the
            baseline.
    """
    config: str
    rows: Dict[str, dict]

    @property
    def baseline(self) -> str:
        """The row the others are compared with."""
        return next(iter(self.rows))

    @property
    def temperature_row(self) -> str:
        """The baseline after post-hoc temperature scaling."""
        return f'{self.baseline} + T'


def focal_family(loss_type: str, **loss) -> dict:
    """A row that replaces RetinaNet's sigmoid focal loss (alpha 0.25)."""
    return dict(
        bbox_head=dict(
            loss_cls=dict(
                _delete_=True,
                type=loss_type,
                use_sigmoid=True,
                alpha=0.25,
                **loss)))


def box_classifier(loss_type: str, **loss) -> dict:
    """A row that replaces the RoI box classifier's softmax cross-entropy
    (over the C + 1 classes, background included)."""
    return dict(
        roi_head=dict(
            bbox_head=dict(
                loss_cls=dict(
                    _delete_=True, type=loss_type, use_sigmoid=False, **
                    loss))))


def neon_config(name: str) -> str:
    return osp.join(REPO_ROOT, 'configs', 'neon_trees', name)


# RetinaNet on the ImageNet MobileNetV2, the sigmoid focal loss as baseline:
# every one-stage loss where its paper put it.
ONE_STAGE = Comparison(
    config=neon_config('retinanet_mobilenetv2_fpn_neon-trees.py'),
    rows={
        'focal':
        focal_family('FocalLoss', gamma=2.0),
        'polyfocal':
        focal_family('PolyFocalLoss', gamma=2.0, epsilon=-1.0),
        'poly1star':
        focal_family('Poly1StarFocalLoss', gamma=2.0, epsilon=-0.4),
        # Sigmoid FLA-53 (configs/calibration): gamma 5 below pt 0.2, else
        # 3.
        'adaptive_focal':
        focal_family(
            'AdaptiveFocalLoss', gammas=(5.0, 3.0), thresholds=(0.2, )),
        # As configs/dr_loss: the head pools all levels per image, prior
        # 0.5, and the official test threshold.
        'dr':
        dict(
            bbox_head=dict(
                type='DRRetinaHead',
                loss_cls=dict(_delete_=True, type='DRLoss')),
            test_cfg=dict(score_thr=0.2)),
    })

# Faster R-CNN on the same backbone, softmax cross-entropy in the box
# classifier as baseline: where the PolyLoss paper's detection result
# (Poly-1 CE in Mask R-CNN's box classifier, epsilon -1) and the
# calibration paper's softmax focal losses (FLA-53) belong.
TWO_STAGE = Comparison(
    config=neon_config('faster-rcnn_mobilenetv2_fpn_neon-trees.py'),
    rows={
        'ce': {},
        'poly1_ce':
        box_classifier('Poly1CrossEntropyLoss', epsilon=-1.0),
        'adaptive_focal_softmax':
        box_classifier(
            'AdaptiveFocalLoss', gammas=(5.0, 3.0), thresholds=(0.2, )),
    })

# FCOS (anchor-free) on the same backbone: focal against DR loss pooled
# over every point of each image by DRFCOSHead. Not in make run (time):
# compare_losses.py --comparisons anchor-free.
ANCHOR_FREE = Comparison(
    config=neon_config('fcos_mobilenetv2_fpn_neon-trees.py'),
    rows={
        'focal': {},
        'dr':
        dict(
            bbox_head=dict(
                type='DRFCOSHead', loss_cls=dict(_delete_=True,
                                                 type='DRLoss')),
            test_cfg=dict(score_thr=0.2)),
    })

COMPARISONS = {
    'one-stage': ONE_STAGE,
    'two-stage': TWO_STAGE,
    'anchor-free': ANCHOR_FREE
}
