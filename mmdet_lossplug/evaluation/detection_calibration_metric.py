r"""Detection calibration error, D-ECE (Kueppers et al., CVPR-W 2020).

A detector is calibrated when a detection of confidence ``s`` is correct
with probability ``s``. At an IoU threshold, each detection is matched to
the ground truth of its image and class, greedily in order of score (as
COCO does); a match is a true positive. With detections binned by
confidence, the precision of a bin plays the part accuracy plays in ECE:

.. math::

    \text{D-ECE} = \sum_b \frac{|B_b|}{N}
                   |\mathrm{prec}(B_b) - \mathrm{conf}(B_b)|.

This is the confidence-only D-ECE; Kueppers et al. also bin by box
position, which needs many more detections per bin than a validation split
of one dataset gives.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmdet.datasets.api_wrappers import COCO
from mmdet.evaluation.functional import bbox_overlaps
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.fileio import get_local_path
from mmengine.logging import MessageHub, MMLogger
from mmengine.visualization import Visualizer

from .calibration import adaptive_ece, ece, mce, to_numpy
from .reliability_diagram import plot_reliability_diagram

# Outcome of a detection at one IoU threshold.
FALSE_POSITIVE, TRUE_POSITIVE, IGNORED = 0, 1, -1


def match_detections(bboxes: np.ndarray, scores: np.ndarray,
                     labels: np.ndarray, gt_bboxes: np.ndarray,
                     gt_labels: np.ndarray, gt_ignored: np.ndarray,
                     iou_thr: float) -> np.ndarray:
    """Greedy matching of one image's detections to its ground truth.

    Per class, in order of decreasing score, a detection takes the unmatched
    ground-truth box it overlaps most if that IoU is ``>= iou_thr``. One
    that instead overlaps an ignored (crowd) box that much is left out of
    the calibration set, as COCO leaves it out of AP.

    Args:
        bboxes (np.ndarray): ``(N, 4)`` detections, xyxy.
        scores (np.ndarray): ``(N,)``.
        labels (np.ndarray): ``(N,)``.
        gt_bboxes (np.ndarray): ``(M, 4)`` xyxy.
        gt_labels (np.ndarray): ``(M,)``.
        gt_ignored (np.ndarray): ``(M,)`` bool.
        iou_thr (float): IoU a match needs.

    Returns:
        np.ndarray: ``(N,)`` int8, ``TRUE_POSITIVE``, ``FALSE_POSITIVE`` or
        ``IGNORED`` per detection.
    """
    outcome = np.full(len(scores), FALSE_POSITIVE, dtype=np.int8)
    for label in np.unique(labels):
        dets = np.flatnonzero(labels == label)
        dets = dets[np.argsort(-scores[dets], kind='stable')]
        gts = np.flatnonzero(gt_labels == label)
        if not len(gts):
            continue
        ious = bbox_overlaps(bboxes[dets], gt_bboxes[gts])
        ignored = gt_ignored[gts]
        taken = np.zeros(len(gts), dtype=bool)
        for det, iou in zip(dets, ious):
            free = np.where(taken | ignored, -1.0, iou)
            best = int(free.argmax())
            if free[best] >= iou_thr:
                outcome[det] = TRUE_POSITIVE
                taken[best] = True
            elif (iou[ignored] >= iou_thr).any():
                outcome[det] = IGNORED
    return outcome


def _numpy(values, dtype) -> np.ndarray:
    if hasattr(values, 'tensor'):  # mmdet's box types
        values = values.tensor
    return to_numpy(values, dtype)


def iou_key(iou_thr: float) -> str:
    """``0.5 -> '50'``, ``0.75 -> '75'``: the suffix of the metric names."""
    return f'{round(100 * iou_thr):d}'


@METRICS.register_module()
class DetectionCalibrationMetric(BaseMetric):
    """D-ECE, adaptive D-ECE (equal-mass bins) and D-MCE at IoU thresholds,
    with a reliability diagram per threshold.

    Use it beside ``CocoMetric``::

        val_evaluator = [
            dict(type='CocoMetric', ann_file=..., metric='bbox'),
            dict(type='DetectionCalibrationMetric', iou_thrs=(0.5, 0.75)),
        ]

    Metrics are ``calibration/d_ece_50``, ``calibration/adaptive_d_ece_50``,
    ``calibration/d_mce_50`` and so on, in ``[0, 1]``. Under distributed
    evaluation each rank matches its own images; ``BaseMetric`` gathers the
    (confidence, outcome) pairs and rank 0 bins them.

    The diagrams go to the current mmengine visualizer as
    ``reliability_iou50`` (with the default ``LocalVisBackend`` a PNG in
    ``<work_dir>/<timestamp>/vis_data/vis_image/``; with TensorBoard an
    image summary) and, if ``out_dir`` is given, to
    ``<out_dir>/reliability_iou50.png``.

    Args:
        iou_thrs (Sequence[float]): IoU thresholds. Defaults to (0.5, 0.75).
        n_bins (int): Confidence bins. Defaults to 10.
        ann_file (str, optional): COCO annotations to take the ground truth
            from, by ``img_id``. Without it the ground truth is the data
            samples' ``gt_instances`` and ``ignored_instances`` (the test
            pipeline must load annotations).
        score_thr (float): Detections below this score are left out.
            Defaults to 0 (everything the detector outputs).
        out_dir (str, optional): Also write the diagrams here.
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): Defaults to ``'calibration'``.
        backend_args (dict, optional): For reading ``ann_file``.
    """

    default_prefix: Optional[str] = 'calibration'

    def __init__(self,
                 iou_thrs: Sequence[float] = (0.5, 0.75),
                 n_bins: int = 10,
                 ann_file: Optional[str] = None,
                 score_thr: float = 0.0,
                 out_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.iou_thrs = tuple(float(t) for t in iou_thrs)
        if not self.iou_thrs or not all(0 < t <= 1 for t in self.iou_thrs):
            raise ValueError(f'iou_thrs must be in (0, 1], got {iou_thrs}')
        if n_bins < 1:
            raise ValueError(f'n_bins must be >= 1, got {n_bins}')
        if not 0 <= score_thr < 1:
            raise ValueError(f'score_thr must be in [0, 1), got {score_thr}')
        self.n_bins = n_bins
        self.score_thr = score_thr
        self.out_dir = out_dir
        self._coco = None
        if ann_file is not None:
            with get_local_path(ann_file, backend_args=backend_args) as path:
                self._coco = COCO(path)
        self._label_of_cat: Optional[Dict[int, int]] = None

    def _coco_ground_truth(self, img_id: int):
        if self._label_of_cat is None:
            if not self.dataset_meta or 'classes' not in self.dataset_meta:
                raise ValueError('DetectionCalibrationMetric with ann_file '
                                 'needs dataset_meta with the classes')
            cat_ids = self._coco.get_cat_ids(
                cat_names=self.dataset_meta['classes'])
            self._label_of_cat = {c: i for i, c in enumerate(cat_ids)}
        anns = [
            a for a in self._coco.load_anns(
                self._coco.get_ann_ids(img_ids=[img_id]))
            if a['category_id'] in self._label_of_cat
        ]
        xywh = np.array([a['bbox'] for a in anns],
                        dtype=np.float32).reshape(-1, 4)
        bboxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
        labels = np.array([self._label_of_cat[a['category_id']] for a in anns],
                          dtype=np.int64)
        ignored = np.array(
            [bool(a.get('iscrowd', 0) or a.get('ignore', 0)) for a in anns],
            dtype=bool)
        return bboxes, labels, ignored

    @staticmethod
    def _sample_ground_truth(data_sample: dict):
        if 'gt_instances' not in data_sample:
            raise ValueError(
                'DetectionCalibrationMetric needs ground truth: keep '
                'LoadAnnotations in the test pipeline or pass ann_file')
        parts = [data_sample['gt_instances']]
        if 'ignored_instances' in data_sample:
            parts.append(data_sample['ignored_instances'])
        bboxes = np.concatenate(
            [_numpy(p['bboxes'], np.float32).reshape(-1, 4) for p in parts])
        labels = np.concatenate(
            [_numpy(p['labels'], np.int64).reshape(-1) for p in parts])
        ignored = np.arange(len(labels)) >= len(parts[0]['labels'])
        return bboxes, labels, ignored

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store each image's kept confidences and their outcome at every
        IoU threshold: ``(scores (N,), outcomes (len(iou_thrs), N))``."""
        for data_sample in data_samples:
            pred = data_sample['pred_instances']
            scores = _numpy(pred['scores'], np.float64).reshape(-1)
            if not np.isfinite(scores).all():
                raise ValueError(f"image {data_sample.get('img_id')}: "
                                 'detection scores contain NaN or Inf')
            keep = scores >= self.score_thr
            bboxes = _numpy(pred['bboxes'], np.float32).reshape(-1, 4)[keep]
            labels = _numpy(pred['labels'], np.int64).reshape(-1)[keep]
            scores = scores[keep]
            if self._coco is not None:
                gt = self._coco_ground_truth(data_sample['img_id'])
            else:
                gt = self._sample_ground_truth(data_sample)
            outcomes = np.stack([
                match_detections(bboxes, scores, labels, *gt, iou_thr=thr)
                for thr in self.iou_thrs
            ])
            self.results.append((scores, outcomes))

    @staticmethod
    def counted_detections(results: List[Tuple[np.ndarray, np.ndarray]],
                           index: int = 0):
        """All images' ``(confidences, outcomes)`` at the ``index``-th IoU
        threshold, without the detections on ignored ground truth."""
        scores = np.concatenate([r[0] for r in results])
        outcomes = np.concatenate([r[1][index] for r in results])
        counted = outcomes != IGNORED
        return scores[counted], outcomes[counted]

    def compute_metrics(self, results: list) -> Dict[str, float]:
        logger = MMLogger.get_current_instance()
        metrics = {}
        for index, thr in enumerate(self.iou_thrs):
            key = iou_key(thr)
            conf, hits = self.counted_detections(results, index)
            if not len(conf):
                logger.warning(f'DetectionCalibrationMetric: no detections '
                               f'at IoU {thr}; D-ECE is undefined (NaN)')
                for name in ('d_ece', 'adaptive_d_ece', 'd_mce'):
                    metrics[f'{name}_{key}'] = float('nan')
                continue
            metrics[f'd_ece_{key}'] = ece(conf, hits, self.n_bins)
            metrics[f'adaptive_d_ece_{key}'] = adaptive_ece(
                conf, hits, self.n_bins)
            metrics[f'd_mce_{key}'] = mce(conf, hits, self.n_bins)
            logger.info(f'D-ECE at IoU {thr}: '
                        f"{100 * metrics[f'd_ece_{key}']:.2f}% over "
                        f'{len(conf)} detections, precision '
                        f'{hits.mean():.3f}, mean confidence '
                        f'{conf.mean():.3f}')
            self._save_diagram(conf, hits, thr)
        return metrics

    def _save_diagram(self, conf: np.ndarray, hits: np.ndarray,
                      thr: float) -> None:
        name = f'reliability_iou{iou_key(thr)}'
        image = plot_reliability_diagram(
            conf,
            hits,
            self.n_bins,
            title=f'detections at IoU {thr:g}',
            accuracy_label='precision',
            error_name='D-ECE')
        if self.out_dir is not None:
            mmcv.imwrite(image[..., ::-1], osp.join(self.out_dir,
                                                    name + '.png'))
        try:
            visualizer = Visualizer.get_current_instance()
        except RuntimeError:  # offline evaluation: no runner, no visualizer
            return
        step = MessageHub.get_current_instance().get_info('iter', 0)
        visualizer.add_image(name, image, step=step)
