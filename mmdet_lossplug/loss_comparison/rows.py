"""The rows of a loss comparison: one config, a baseline loss named once,
and what each other row changes in the config's model. A new comparison
(another head, another baseline) is another ``Comparison``, not more code.

A comparison's rows apply to whichever head its config has: the sigmoid
rows to a dense head's ``loss_cls`` (RetinaNet, ATSS, FCOS and the like),
the box-classifier rows to a two-stage detector's
``roi_head.bbox_head.loss_cls``, and the DR row to the DR variant of the
dense head (:data:`DR_HEADS`). :meth:`Comparison.check` says which config
a row cannot change, and why, before anything trains.
"""
import copy
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from .data import CocoData, shipped_file

# The head that gives DR loss every anchor or point of an image, for each
# dense head it can stand in for (and for itself).
DR_HEADS = {
    'RetinaHead': 'DRRetinaHead',
    'ATSSHead': 'DRATSSHead',
    'FCOSHead': 'DRFCOSHead'
}
DR_HEADS.update({dr: dr for dr in tuple(DR_HEADS.values())})
# A row's head type that stands for "the DR variant of the config's head".
DR_VARIANT = '<DR variant of the head>'


@dataclass(frozen=True)
class Comparison:
    """Losses trained on one config.

    Attributes:
        config (str): The config every row starts from.
        rows (dict): Row name -> what it merges into ``cfg.model`` (with
            ``_delete_`` where a loss replaces another); the first is the
            baseline.
        classifier (tuple[str]): Where in ``cfg.model`` the head whose
            ``loss_cls`` the rows replace is.
        sigmoid (bool): Whether that loss is a sigmoid one (a dense head)
            or a softmax over the classes and background (a box
            classifier).
        data (CocoData, optional): The dataset to train and score on;
            ``None``: the config's own (NEON's, from its environment).
    """
    config: str
    rows: Dict[str, dict]
    classifier: Tuple[str, ...] = ('bbox_head', )
    sigmoid: bool = True
    data: Optional[CocoData] = None

    @property
    def baseline(self) -> str:
        """The row the others are compared with."""
        return next(iter(self.rows))

    @property
    def temperature_row(self) -> str:
        """The baseline after post-hoc temperature scaling."""
        return f'{self.baseline} + T'

    def head(self, model) -> dict:
        """The config's head whose ``loss_cls`` the rows replace; a
        ``ValueError`` naming the config where it has none."""
        where = 'model'
        head = model
        for key in self.classifier:
            where += f'.{key}'
            head = head.get(key) if isinstance(head, dict) else None
            if head is None:
                raise ValueError(f'{self.config}: {where} is missing; the '
                                 'rows of this comparison replace its '
                                 'loss_cls')
        if not isinstance(head, dict):
            raise ValueError(f'{self.config}: {where} is a '
                             f'{type(head).__name__}, not one head (e.g. a '
                             "cascade's list): no row can replace its "
                             'loss_cls')
        loss = head.get('loss_cls')
        if not loss:
            raise ValueError(f'{self.config}: {where} ({head.get("type")}) '
                             'has no classification loss (loss_cls) for '
                             'the rows to replace')
        if bool(loss.get('use_sigmoid', False)) != self.sigmoid:
            raise ValueError(
                f'{self.config}: {where}.loss_cls is {loss.get("type")} with '
                f'use_sigmoid={loss.get("use_sigmoid", False)}; the rows of '
                'this comparison replace a '
                f'{"sigmoid" if self.sigmoid else "softmax"} loss')
        return head

    def row(self, name: str, model) -> dict:
        """What row ``name`` merges into ``model`` (a config's
        ``cfg.model``), its DR head resolved for the config's head."""
        row = copy.deepcopy(self.rows[name])
        head = self.head(model)
        changed = row.get('bbox_head', {})
        if changed.get('type') == DR_VARIANT:
            if head.get('type') not in DR_HEADS:
                raise ValueError(
                    f'{self.config}: row {name!r} needs a DR variant of '
                    f'{head.get("type")}, and there is one only of '
                    f'{", ".join(sorted(DR_HEADS))}; leave the row out with '
                    '--losses')
            changed['type'] = DR_HEADS[head['type']]
        return row

    def check(self, model) -> None:
        """Every row applies to ``model``; else a ``ValueError`` naming
        the config and what is wrong."""
        for name in self.rows:
            self.row(name, model)


def focal_family(loss_type: str, **loss) -> dict:
    """A row that replaces a dense head's sigmoid focal loss (alpha
    0.25)."""
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
    """A config of ``configs/neon_trees``, shipped with the package."""
    return shipped_file('configs', 'neon_trees', name)


# As configs/dr_loss: the head pools all levels per image, prior 0.5, and
# the official test threshold.
DR_ROW = dict(
    bbox_head=dict(
        type=DR_VARIANT, loss_cls=dict(_delete_=True, type='DRLoss')),
    test_cfg=dict(score_thr=0.2))

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
        'dr':
        DR_ROW,
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
    },
    classifier=('roi_head', 'bbox_head'),
    sigmoid=False)

# FCOS (anchor-free) on the same backbone: focal against DR loss pooled
# over every point of each image by DRFCOSHead. Not in make run (time):
# compare_losses.py --comparisons anchor-free. On a user's dataset the
# one-stage comparison with an FCOS config is this and more.
ANCHOR_FREE = Comparison(
    config=neon_config('fcos_mobilenetv2_fpn_neon-trees.py'),
    rows={
        'focal': {},
        'dr': DR_ROW
    })

COMPARISONS = {
    'one-stage': ONE_STAGE,
    'two-stage': TWO_STAGE,
    'anchor-free': ANCHOR_FREE
}
