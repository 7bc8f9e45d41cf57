r"""Detection calibration: D-ECE (Kueppers et al., CVPR-W 2020), LaECE and
LRP (Kuzucu, Oksuz et al., ECCV 2024), from COCO's own verdicts.

A detector is calibrated when a detection of confidence ``s`` is correct
with probability ``s``. Which detections are correct is decided by
pycocotools' ``COCOeval`` (see :mod:`.coco_matching`), so the detections
judged are exactly those COCO AP judged. With them binned by confidence,
the precision of a bin plays the part accuracy plays in ECE:

.. math::

    \text{D-ECE} = \sum_b \frac{|B_b|}{N}
                   |\mathrm{prec}(B_b) - \mathrm{conf}(B_b)|.

This is the confidence-only D-ECE; Kueppers et al. also bin by box
position, which needs many more detections per bin than a validation split
of one dataset gives. LaECE and LRP: :mod:`.localisation_aware`.
"""
import numbers
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmdet.datasets.api_wrappers import COCO
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.fileio import get_local_path
from mmengine.logging import MessageHub, MMLogger
from mmengine.visualization import Visualizer

from .calibration import adaptive_ece, check_n_bins, ece, mce, to_numpy
from .coco_matching import (IGNORED, TRUE_POSITIVE, CocoVerdicts,
                            coco_ground_truth, judge_detections)
from .localisation_aware import laece, lrp
from .reliability_diagram import plot_reliability_diagram


def _numpy(values, dtype) -> np.ndarray:
    if hasattr(values, 'tensor'):  # mmdet's box types
        values = values.tensor
    return to_numpy(values, dtype)


def iou_key(iou_thr: float) -> str:
    """The suffix of the metric names: ``0.5 -> '50'``, ``0.75 -> '75'``,
    ``0.504 -> '50p4'`` (the percentage, ``.`` written ``p``)."""
    return f'{100 * iou_thr:g}'.replace('.', 'p')


def _iou_thresholds(iou_thrs) -> Tuple[float, ...]:
    if isinstance(iou_thrs, numbers.Real):
        iou_thrs = (iou_thrs, )
    if isinstance(iou_thrs, str) or not isinstance(iou_thrs, Sequence):
        raise ValueError('iou_thrs must be a number or a sequence of '
                         f'numbers, got {iou_thrs!r}')
    thrs = tuple(float(t) for t in iou_thrs)
    if not thrs or not all(0 < t <= 1 for t in thrs):
        raise ValueError(f'iou_thrs must be in (0, 1], got {iou_thrs}')
    keys = [iou_key(t) for t in thrs]
    if len(set(keys)) != len(keys):
        raise ValueError(f'iou_thrs {iou_thrs} repeat a threshold or give '
                         f'two the same metric name ({keys})')
    return thrs


@METRICS.register_module()
class DetectionCalibrationMetric(BaseMetric):
    """D-ECE, adaptive D-ECE (equal-mass bins) and D-MCE at IoU thresholds,
    with a reliability diagram each, and LaECE and LRP at one threshold.

    Use it beside ``CocoMetric``::

        val_evaluator = [
            dict(type='CocoMetric', ann_file=..., metric='bbox'),
            dict(type='DetectionCalibrationMetric', iou_thrs=(0.5, 0.75)),
        ]

    What is counted:

    - **detections**: those with ``score >= score_thr``, then those COCO AP
      judges: per image and class the ``max_dets`` highest scored, matched
      by ``COCOeval`` (area range "all"). Detections on crowd regions
      (COCO's ``dtIgnore``) and past ``max_dets`` are left out. A detection
      in an image without ground truth of its class is a false positive.
    - **D-ECE / adaptive D-ECE / D-MCE** at each of ``iou_thrs``: all
      classes pooled; a true positive scores 1, a false positive 0; ``n_bins``
      equal-width bins ``(e_b, e_{b+1}]`` with ``e = linspace(0, 1,
      n_bins + 1)`` (0 in the first bin), or equal-mass bins for the
      adaptive one. Names ``d_ece_50``, ``adaptive_d_ece_50``,
      ``d_mce_50`` (``_75``, ``_50p4`` for 0.504, ...).
    - **LaECE** at IoU ``laece_iou_thr`` (default 0, the toolkit's
      LaECE_0; Oksuz et al. CVPR 2023 used 0.1): per class, a true positive
      scores its IoU, ``laece_n_bins`` equal-width bins, the mean over
      classes with ground truth and detections. Name ``laece``. Unlike the
      toolkit, a class with LaECE exactly 0 counts (the toolkit drops it).
      At threshold 0, COCOeval (and so the toolkit) lets a detection take
      any still-free object of its class in its image, even at IoU 0: a
      true positive of IoU 0, which scores 0 for LaECE as a false positive
      would, but counts as found for LRP.
    - **LRP** at the same threshold (mean over classes with ground truth:
      ``lrp``, ``lrp_loc``, ``lrp_fp``, ``lrp_fn``), of all kept
      detections; the toolkit also reports oLRP, at each class's best score
      threshold, which is not computed here.

    All values lie in ``[0, 1]``; NaN (with a warning) where nothing is
    counted. Under distributed evaluation each rank stores its images and
    rank 0 runs ``COCOeval`` over all of them.

    The diagrams go to the current mmengine visualizer as
    ``reliability_iou50`` (with the default ``LocalVisBackend`` a PNG in
    ``<work_dir>/<timestamp>/vis_data/vis_image/``; with TensorBoard an
    image summary) and, if ``out_dir`` is given, to
    ``<out_dir>/reliability_iou50.png``.

    Args:
        iou_thrs (float | Sequence[float]): D-ECE's IoU thresholds, each in
            ``(0, 1]``. Defaults to (0.5, 0.75).
        n_bins (int): D-ECE's confidence bins. Defaults to 10.
        laece_iou_thr (float): LaECE's and LRP's IoU threshold, in
            ``[0, 1)``. Defaults to 0.0.
        laece_n_bins (int): LaECE's bins. Defaults to 25 (the toolkit's).
        max_dets (int): Detections judged per image and class. Defaults to
            100 (COCO AP's).
        score_thr (float): Detections below this score are dropped first.
            Defaults to 0 (everything the detector outputs, as AP).
        ann_file (str, optional): COCO annotations to take the ground truth
            from, by ``img_id``. Without it the ground truth is the data
            samples' ``gt_instances`` and ``ignored_instances`` (crowd; the
            test pipeline must load annotations).
        out_dir (str, optional): Also write the diagrams here.
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): Defaults to ``'calibration'``.
        backend_args (dict, optional): For reading ``ann_file``.
    """

    default_prefix: Optional[str] = 'calibration'

    def __init__(self,
                 iou_thrs: Sequence[float] = (0.5, 0.75),
                 n_bins: int = 10,
                 laece_iou_thr: float = 0.0,
                 laece_n_bins: int = 25,
                 max_dets: int = 100,
                 score_thr: float = 0.0,
                 ann_file: Optional[str] = None,
                 out_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.iou_thrs = _iou_thresholds(iou_thrs)
        self.n_bins = check_n_bins(n_bins)
        self.laece_n_bins = check_n_bins(laece_n_bins)
        if not 0 <= laece_iou_thr < 1:
            raise ValueError('laece_iou_thr must be in [0, 1), got '
                             f'{laece_iou_thr}')
        self.laece_iou_thr = float(laece_iou_thr)
        if isinstance(max_dets, bool) or not isinstance(
                max_dets, numbers.Integral) or max_dets < 1:
            raise ValueError(f'max_dets must be an int >= 1, got {max_dets}')
        self.max_dets = int(max_dets)
        if not 0 <= score_thr < 1:
            raise ValueError(f'score_thr must be in [0, 1), got {score_thr}')
        self.score_thr = score_thr
        self.out_dir = out_dir
        self._coco = None
        if ann_file is not None:
            with get_local_path(ann_file, backend_args=backend_args) as path:
                self._coco = COCO(path)

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
            [_numpy(p['bboxes'], np.float64).reshape(-1, 4) for p in parts])
        labels = np.concatenate(
            [_numpy(p['labels'], np.int64).reshape(-1) for p in parts])
        crowd = np.arange(len(labels)) >= len(parts[0]['labels'])
        return bboxes, labels, crowd

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store each image's kept detections (and its ground truth unless
        it comes from ``ann_file``)."""
        for data_sample in data_samples:
            img_id = data_sample.get('img_id')
            pred = data_sample['pred_instances']
            scores = _numpy(pred['scores'], np.float64).reshape(-1)
            bboxes = _numpy(pred['bboxes'], np.float64).reshape(-1, 4)
            labels = _numpy(pred['labels'], np.int64).reshape(-1)
            if not len(scores) == len(bboxes) == len(labels):
                raise ValueError(
                    f'image {img_id}: pred_instances hold {len(bboxes)} '
                    f'bboxes, {len(scores)} scores and {len(labels)} labels;'
                    ' they must be equally many')
            if not np.all((scores >= 0) & (scores <= 1)):
                raise ValueError(
                    f'image {img_id}: detection scores must lie in [0, 1] '
                    f'(no NaN), got e.g. '
                    f'{scores[~((scores >= 0) & (scores <= 1))][0]}')
            if len(labels) and labels.min() < 0:
                raise ValueError(f'image {img_id}: negative label '
                                 f'{labels.min()}')
            keep = scores >= self.score_thr
            gt = None
            if self._coco is None:
                gt = self._sample_ground_truth(data_sample)
            self.results.append(
                dict(
                    img_id=img_id,
                    bboxes=bboxes[keep],
                    scores=scores[keep],
                    labels=labels[keep],
                    gt=gt))

    def _cat_ids(self, results: list) -> List[int]:
        """The category id of each label."""
        classes = (self.dataset_meta or {}).get('classes')
        if self._coco is not None:
            if not classes:
                raise ValueError('DetectionCalibrationMetric with ann_file '
                                 'needs dataset_meta with the classes')
            return self._coco.get_cat_ids(cat_names=classes)
        if classes:
            return list(range(len(classes)))
        labels = [r['labels'] for r in results] + [r['gt'][1] for r in results]
        return list(range(int(np.concatenate(labels).max(initial=0)) + 1))

    def judge(self,
              results: list) -> Tuple[np.ndarray, np.ndarray, CocoVerdicts]:
        """COCOeval's verdicts on all stored detections.

        Returns:
            tuple: ``scores (N,)``, ``labels (N,)`` and the verdicts at
            ``iou_thrs + (laece_iou_thr,)``.
        """
        if not results:
            raise ValueError('DetectionCalibrationMetric: no images were '
                             'evaluated (an empty dataset or dataloader)')
        cat_ids = self._cat_ids(results)
        labels = np.concatenate([r['labels'] for r in results])
        if len(labels) and labels.max() >= len(cat_ids):
            raise ValueError(f'a detection has label {labels.max()}, but '
                             f'there are {len(cat_ids)} classes')
        if self._coco is None:
            # The ground truth travels with each sample: number them.
            img_ids = list(range(len(results)))
            coco_gt = coco_ground_truth(img_ids, [r['gt'][0] for r in results],
                                        [r['gt'][1] for r in results],
                                        [r['gt'][2] for r in results],
                                        len(cat_ids))
        else:
            img_ids = [r['img_id'] for r in results]
            if len(set(img_ids)) != len(img_ids):
                raise ValueError('DetectionCalibrationMetric: an img_id was '
                                 'evaluated twice')
        det_img_ids = np.concatenate([
            np.full(len(r['scores']), img_id)
            for img_id, r in zip(img_ids, results)
        ])
        scores = np.concatenate([r['scores'] for r in results])
        verdicts = judge_detections(
            coco_gt if self._coco is None else self._coco,
            img_ids,
            cat_ids,
            det_img_ids,
            np.concatenate([r['bboxes'] for r in results]).reshape(-1, 4),
            scores,
            labels,
            self.iou_thrs + (self.laece_iou_thr, ),
            max_dets=self.max_dets)
        return scores, labels, verdicts

    @staticmethod
    def counted(scores: np.ndarray, verdicts: CocoVerdicts,
                index: int) -> Tuple[np.ndarray, np.ndarray]:
        """``(confidences, hits)`` of the detections judged at the
        ``index``-th threshold, without the ignored ones."""
        outcomes = verdicts.outcomes[index]
        counted = outcomes != IGNORED
        return scores[counted], (outcomes[counted] == TRUE_POSITIVE).astype(
            np.float64)

    def calibration_errors(self, scores: np.ndarray, labels: np.ndarray,
                           verdicts: CocoVerdicts) -> Dict[str, float]:
        """D-ECE family per IoU threshold, LaECE and LRP, of judged
        detections (``scores`` may be recalibrated ones)."""
        logger = MMLogger.get_current_instance()
        metrics = {}
        for index, thr in enumerate(self.iou_thrs):
            key = iou_key(thr)
            conf, hits = self.counted(scores, verdicts, index)
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
        outcomes = verdicts.outcomes[-1]
        counted = outcomes != IGNORED
        ious = verdicts.ious[-1][counted]
        metrics['laece'] = laece(scores[counted], labels[counted], ious,
                                 verdicts.num_gt, self.laece_n_bins)
        errors = lrp(labels[counted], outcomes[counted] == TRUE_POSITIVE, ious,
                     verdicts.num_gt, self.laece_iou_thr)
        metrics.update(errors)
        logger.info(f'At IoU {self.laece_iou_thr}: LaECE '
                    f"{100 * metrics['laece']:.2f}%, LRP "
                    f"{100 * errors['lrp']:.2f}%")
        return metrics

    def compute_metrics(self, results: list) -> Dict[str, float]:
        scores, labels, verdicts = self.judge(results)
        metrics = self.calibration_errors(scores, labels, verdicts)
        for index, thr in enumerate(self.iou_thrs):
            conf, hits = self.counted(scores, verdicts, index)
            if len(conf):
                self.save_diagram(conf, hits, thr)
        return metrics

    def save_diagram(self, conf: np.ndarray, hits: np.ndarray,
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
