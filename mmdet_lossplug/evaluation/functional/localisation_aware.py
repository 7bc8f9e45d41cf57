r"""Localisation-aware calibration error (LaECE) and the LRP error, as
fiveai/detection_calibration defines them (Kuzucu, Oksuz et al., ECCV 2024,
"On Calibration of Object Detectors: Pitfalls, Evaluation and Baselines";
Oksuz et al., CVPR 2023; LRP: Oksuz et al., TPAMI 2022).

Both take detections already judged at one IoU threshold ``tau`` (true
positive with its IoU, or false positive; ignored ones left out) and the
number of (non-crowd) ground-truth objects per class.

LaECE asks a confidence to match the expected IoU of a detection, 0 for a
false positive. Per class ``c``, with the class's detections in
equal-width confidence bins ``B_b^c``,

.. math::

    \mathrm{LaECE}_c = \sum_b \frac{|B_b^c|}{N_c}
        \Big|\frac{1}{|B_b^c|}\sum_{i \in B_b^c} \mathrm{IoU}_i
             - \frac{1}{|B_b^c|}\sum_{i \in B_b^c} s_i\Big|,

averaged over the classes that have ground truth and detections. The LRP
error of a class with ``TP``, ``FP`` and ``FN`` (= objects - ``TP``) is

.. math::

    \mathrm{LRP}_c = \frac{\sum_{TP} (1 - \mathrm{IoU}_i) / (1 - \tau)
        + FP + FN}{TP + FP + FN},

1 when the class has no true positive; its components are the mean
``1 - IoU`` of the true positives, ``FP / (TP + FP)`` (both defined only
where ``TP > 0``) and ``FN / objects``, each averaged over the classes
where it is defined.
"""
from typing import Dict

import numpy as np

from .calibration_errors import equal_width_bin_index, to_numpy


def _per_class(labels, num_gt, name):
    labels = to_numpy(labels, np.int64).ravel()
    num_gt = to_numpy(num_gt, np.int64).ravel()
    if len(labels) and (labels.min() < 0 or labels.max() >= len(num_gt)):
        raise ValueError(f'{name}: labels must lie in [0, {len(num_gt) - 1}]'
                         ' (one ground-truth count per class)')
    return labels, num_gt


def laece(confidences, labels, ious, num_gt, n_bins: int = 25) -> float:
    """LaECE over judged detections.

    Args:
        confidences: ``(N,)`` scores in ``[0, 1]``.
        labels: ``(N,)`` class indices.
        ious: ``(N,)`` IoU of each true positive with its match, 0 for false
            positives.
        num_gt: ``(K,)`` objects per class. Classes without any are left out
            (their detections too), as are classes without detections.
        n_bins (int): Equal-width bins. Defaults to 25, the toolkit's.

    Returns:
        float: Mean LaECE over the classes counted; NaN if none is.
    """
    labels, num_gt = _per_class(labels, num_gt, 'laece')
    conf = to_numpy(confidences).ravel()
    quality = to_numpy(ious).ravel()
    if not conf.shape == quality.shape == labels.shape:
        raise ValueError(f'laece: confidences {conf.shape}, labels '
                         f'{labels.shape} and ious {quality.shape} must have '
                         'the same size')
    if not np.all((conf >= 0) & (conf <= 1) & (quality >= 0) & (quality <= 1)):
        raise ValueError('laece: confidences and ious must lie in [0, 1]')
    bins = equal_width_bin_index(conf, n_bins)
    errors = []
    for label in np.flatnonzero(num_gt > 0):
        mine = labels == label
        if not mine.any():
            continue
        count = np.bincount(bins[mine], minlength=n_bins)
        conf_sum = np.bincount(bins[mine], conf[mine], minlength=n_bins)
        iou_sum = np.bincount(bins[mine], quality[mine], minlength=n_bins)
        # |B| / N * |mean IoU - mean conf| = |sum IoU - sum conf| / N
        errors.append(np.abs(iou_sum - conf_sum).sum() / count.sum())
    return float(np.mean(errors)) if errors else float('nan')


def lrp(labels, hits, ious, num_gt, tau: float) -> Dict[str, float]:
    """LRP error and its components, each the mean over classes.

    Args:
        labels: ``(N,)`` class indices of the judged detections.
        hits: ``(N,)`` bool, true positive at IoU ``tau``.
        ious: ``(N,)`` IoU of each true positive.
        num_gt: ``(K,)`` objects per class; classes without any are left
            out.
        tau (float): The IoU threshold the detections were judged at, in
            ``[0, 1)``.

    Returns:
        dict: ``lrp``, ``lrp_loc``, ``lrp_fp``, ``lrp_fn`` (NaN where no
        class defines them).
    """
    if not 0 <= tau < 1:
        raise ValueError(f'lrp: tau must be in [0, 1), got {tau}')
    labels, num_gt = _per_class(labels, num_gt, 'lrp')
    hits = to_numpy(hits, bool).ravel()
    quality = to_numpy(ious).ravel()
    if not hits.shape == quality.shape == labels.shape:
        raise ValueError('lrp: labels, hits and ious must have the same '
                         'size')
    parts = {name: [] for name in ('lrp', 'lrp_loc', 'lrp_fp', 'lrp_fn')}
    for label in np.flatnonzero(num_gt > 0):
        mine = labels == label
        tp = int(hits[mine].sum())
        fp = int(mine.sum()) - tp
        fn = int(num_gt[label]) - tp
        parts['lrp_fn'].append(fn / num_gt[label])
        if tp == 0:  # the toolkit leaves loc and FP undefined here
            parts['lrp'].append(1.0)
            continue
        loc = float(np.sum(1 - quality[mine & hits]))
        parts['lrp'].append((loc / (1 - tau) + fp + fn) / (tp + fp + fn))
        parts['lrp_loc'].append(loc / tp)
        parts['lrp_fp'].append(fp / (tp + fp))
    return {
        name: float(np.mean(values)) if values else float('nan')
        for name, values in parts.items()
    }
