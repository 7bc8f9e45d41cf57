r"""Detection calibration errors of judged detections: D-ECE (Kueppers et
al., CVPR-W 2020), LaECE and LRP (Kuzucu, Oksuz et al., ECCV 2024), and
their reliability diagrams.

A detector is calibrated when a detection of confidence ``s`` is correct
with probability ``s``. Which detections are correct is decided by
pycocotools' ``COCOeval`` (:mod:`.judged_detections`), so the detections
judged are exactly those COCO AP judged. With them binned by confidence,
the precision of a bin plays the part accuracy plays in ECE:

.. math::

    \text{D-ECE} = \sum_b \frac{|B_b|}{N}
                   |\mathrm{prec}(B_b) - \mathrm{conf}(B_b)|.

This is the confidence-only D-ECE; Kueppers et al. also bin by box
position, which needs many more detections per bin than a validation split
of one dataset gives. LaECE and LRP: :mod:`.functional.localisation_aware`.

The errors are computed by :func:`detection_calibration_errors` (numbers
only), logged by :func:`log_detection_calibration_errors`, drawn by
:func:`detection_reliability_diagrams` and saved by :func:`write_diagrams`:
the metric and ``apis.calibrate_predictions`` call each.
"""
import numbers
import os.path as osp
from typing import Dict, Sequence, Tuple

import mmcv
import numpy as np
from mmengine.logging import MMLogger

from .functional import adaptive_ece, ece, laece, lrp, mce
from .judged_detections import JudgedDetections
from .reliability_diagram import plot_reliability_diagram

# LaECE's and LRP's IoU threshold and LaECE's bins, as the toolkit
# (fiveai/detection_calibration) reports LaECE_0.
LAECE_IOU_THR = 0.0
LAECE_N_BINS = 25


def iou_key(iou_thr: float) -> str:
    """The suffix of the metric names: ``0.5 -> '50'``, ``0.75 -> '75'``,
    ``0.504 -> '50p4'`` (the percentage, ``.`` written ``p``)."""
    return f'{100 * iou_thr:g}'.replace('.', 'p')


def check_iou_thresholds(iou_thrs) -> Tuple[float, ...]:
    """D-ECE's IoU thresholds as a tuple of floats in ``(0, 1]`` with
    distinct metric names."""
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


def detection_calibration_errors(
        judged: JudgedDetections,
        iou_thrs: Sequence[float],
        n_bins: int = 10,
        laece_iou_thr: float = LAECE_IOU_THR,
        laece_n_bins: int = LAECE_N_BINS) -> Dict[str, float]:
    """D-ECE, adaptive D-ECE and D-MCE at each of ``iou_thrs``, LaECE and
    LRP at ``laece_iou_thr``, of the detections counted there (all judged
    in ``judged``). Names as :class:`DetectionCalibrationMetric` reports
    them, without its prefix; NaN where nothing counts
    (:func:`log_detection_calibration_errors` warns of it).
    """
    metrics = {}
    for thr in iou_thrs:
        key = iou_key(thr)
        conf, hits = judged.confidences_and_hits(thr)
        for name, error in (('d_ece', ece), ('adaptive_d_ece', adaptive_ece),
                            ('d_mce', mce)):
            metrics[f'{name}_{key}'] = (
                error(conf, hits, n_bins) if len(conf) else float('nan'))
    counted = judged.counted(laece_iou_thr)
    ious = judged.ious(laece_iou_thr)[counted]
    labels = judged.labels[counted]
    num_gt = judged.verdicts.num_gt
    metrics['laece'] = laece(judged.scores[counted], labels, ious, num_gt,
                             laece_n_bins)
    metrics.update(
        lrp(labels,
            judged.hits(laece_iou_thr)[counted], ious, num_gt, laece_iou_thr))
    return metrics


def log_detection_calibration_errors(
        judged: JudgedDetections,
        metrics: Dict[str, float],
        iou_thrs: Sequence[float],
        laece_iou_thr: float = LAECE_IOU_THR) -> None:
    """Log what :func:`detection_calibration_errors` returned, with the
    detections behind each D-ECE, to the current mmengine logger; a warning
    where nothing counted."""
    logger = MMLogger.get_current_instance()
    for thr in iou_thrs:
        conf, hits = judged.confidences_and_hits(thr)
        if not len(conf):
            logger.warning(f'no detections counted at IoU {thr}; D-ECE is '
                           'undefined (NaN)')
            continue
        logger.info(f'D-ECE at IoU {thr}: '
                    f"{100 * metrics[f'd_ece_{iou_key(thr)}']:.2f}% over "
                    f'{len(conf)} detections, precision '
                    f'{hits.mean():.3f}, mean confidence '
                    f'{conf.mean():.3f}')
    logger.info(f'At IoU {laece_iou_thr}: LaECE '
                f"{100 * metrics['laece']:.2f}%, LRP "
                f"{100 * metrics['lrp']:.2f}%")


def detection_reliability_diagrams(judged: JudgedDetections,
                                   iou_thrs: Sequence[float],
                                   n_bins: int = 10) -> Dict[str, np.ndarray]:
    """``reliability_iou<key>``: the RGB reliability diagram (precision per
    confidence bin, D-ECE) at each of ``iou_thrs`` where a detection
    counts."""
    diagrams = {}
    for thr in iou_thrs:
        conf, hits = judged.confidences_and_hits(thr)
        if len(conf):
            diagrams[f'reliability_iou{iou_key(thr)}'] = (
                plot_reliability_diagram(
                    conf,
                    hits,
                    n_bins,
                    title=f'detections at IoU {thr:g}',
                    accuracy_label='precision',
                    error_name='D-ECE'))
    return diagrams


def write_diagrams(diagrams: Dict[str, np.ndarray], out_dir: str) -> None:
    """``<out_dir>/<name>.png`` of each RGB diagram."""
    for name, image in diagrams.items():
        mmcv.imwrite(image[..., ::-1], osp.join(out_dir, name + '.png'))
