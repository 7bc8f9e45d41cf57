"""A run's metrics class by class: COCO AP and AP50 from pycocotools'
``COCOeval`` (its precision table, one column per category, as mmdet's
``CocoMetric(classwise=True)`` reads it), D-ECE at IoU 0.5 and LaECE of
each class's detections from COCOeval's verdicts
(:func:`~mmdet_lossplug.evaluation.judge_predictions`). NaN where a class
has no ground truth (AP) or no detection (calibration errors)."""
import contextlib
import io
from typing import Dict, Sequence

import numpy as np
from pycocotools.cocoeval import COCOeval

from ..evaluation import (LAECE_IOU_THR, LAECE_N_BINS, ece, judge_predictions,
                          laece, load_coco)

# The table's columns (as tables.COLUMNS) and D-ECE's bins (the configs').
AP, AP50, D_ECE, LAECE = ('coco/bbox_mAP', 'coco/bbox_mAP_50',
                          'calibration/d_ece_50', 'calibration/laece')
D_ECE_IOU_THR = 0.5
N_BINS = 10


def _to_coco_results(predictions: Sequence[dict], cat_ids: list) -> list:
    results = []
    for pred in predictions:
        inst = pred['pred_instances']
        for (x1, y1, x2, y2), score, label in zip(
                np.asarray(inst['bboxes'], dtype=np.float64).tolist(),
                np.asarray(inst['scores'], dtype=np.float64).tolist(),
                np.asarray(inst['labels']).tolist()):
            results.append(
                dict(
                    image_id=pred['img_id'],
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    score=score,
                    category_id=cat_ids[label]))
    return results


def _ap_per_class(predictions, coco_gt, cat_ids) -> np.ndarray:
    """``(K, 2)``: AP and AP50 of each category (NaN without ground
    truth)."""
    ap = np.full((len(cat_ids), 2), np.nan)
    results = _to_coco_results(predictions, cat_ids)
    if not results:  # COCOeval cannot load nothing; AP is 0 where GT is
        for k, cat in enumerate(cat_ids):
            if coco_gt.getAnnIds(catIds=[cat], iscrowd=False):
                ap[k] = 0.0
        return ap
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(coco_gt, coco_gt.loadRes(results), 'bbox')
        evaluation.params.imgIds = [p['img_id'] for p in predictions]
        evaluation.params.catIds = cat_ids
        evaluation.evaluate()
        evaluation.accumulate()
    # precision: (IoU thresholds, recall points, categories, areas, maxDets)
    precision = evaluation.eval['precision'][:, :, :, 0, -1]
    for k in range(len(cat_ids)):
        for column, values in enumerate((precision[:, :, k], precision[0, :,
                                                                       k])):
            valid = values[values > -1]
            if valid.size:
                ap[k, column] = valid.mean()
    return ap


def per_class_metrics(predictions: Sequence[dict], ann_file: str,
                      classes: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """AP, AP50, D-ECE@0.5 and LaECE of each class of ``predictions``
    (one dict per image, as dumped) against ``ann_file``.

    Returns:
        dict: class name -> metric key (:data:`AP`, ...) -> value.
    """
    coco_gt = load_coco(ann_file)
    cat_ids = coco_gt.get_cat_ids(cat_names=classes)
    ap = _ap_per_class(predictions, coco_gt, cat_ids)
    judged = judge_predictions(predictions, (D_ECE_IOU_THR, LAECE_IOU_THR),
                               classes, coco_gt)
    conf, hits = judged.confidences_and_hits(D_ECE_IOU_THR)
    labels = judged.labels[judged.counted(D_ECE_IOU_THR)]
    counted = judged.counted(LAECE_IOU_THR)
    num_gt = np.asarray(judged.verdicts.num_gt)
    metrics = {}
    for k, name in enumerate(classes):
        mine = labels == k
        d_ece = ece(conf[mine], hits[mine], N_BINS) if mine.any() else np.nan
        # LaECE of this class alone: the other classes' objects left out.
        only = np.where(np.arange(len(num_gt)) == k, num_gt, 0)
        la = laece(judged.scores[counted], judged.labels[counted],
                   judged.ious(LAECE_IOU_THR)[counted], only, LAECE_N_BINS)
        metrics[name] = {
            AP: float(ap[k, 0]),
            AP50: float(ap[k, 1]),
            D_ECE: float(d_ece),
            LAECE: float(la)
        }
    return metrics
