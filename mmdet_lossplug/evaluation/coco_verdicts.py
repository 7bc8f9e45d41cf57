"""Which detections COCO's AP counts as true positives, false positives or
leaves out, read from pycocotools' ``COCOeval`` itself.

``COCOeval.evaluate`` runs ``evaluateImg`` for every image and category at
every IoU threshold; we keep its verdicts rather than matching again:

- detections of an image and category are taken in order of score (ties
  in input order), the first ``maxDets`` only; the rest are not judged;
- a detection takes the best-overlapping ground truth that is still free
  (``IoU >= t``); crowd regions (``iscrowd``) may take any number of
  detections, overlap with them is intersection over the *detection's*
  area, and a detection on a crowd region is ignored (``dtIgnore``), as is
  one on ground truth outside the area range (here COCO's "all");
- an image with no ground truth of the class makes its detections false
  positives.

So the detections whose calibration we report are exactly those COCO AP
judged, each with the same verdict.
"""
import contextlib
import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

# Verdicts of a detection at one IoU threshold. IGNORED: COCO's dtIgnore, or
# past maxDets in its image and category (COCO does not judge it at all).
FALSE_POSITIVE, TRUE_POSITIVE, IGNORED = 0, 1, -1


@dataclass
class CocoVerdicts:
    """COCOeval's verdicts on ``N`` detections at ``T`` IoU thresholds.

    Attributes:
        outcomes (np.ndarray): ``(T, N)`` int8, ``TRUE_POSITIVE``,
            ``FALSE_POSITIVE`` or ``IGNORED``.
        ious (np.ndarray): ``(T, N)`` IoU of each true positive with the
            ground truth it matched; 0 for the others.
        num_gt (np.ndarray): ``(K,)`` ground truth per category of
            ``cat_ids`` that is not ignored (not crowd): what recall and LRP
            count as objects to find.
    """
    outcomes: np.ndarray
    ious: np.ndarray
    num_gt: np.ndarray


def in_memory_coco(dataset: dict) -> COCO:
    """A pycocotools ``COCO`` of a dataset dict, without its prints."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def xyxy_to_xywh(bboxes: np.ndarray) -> np.ndarray:
    return np.concatenate([bboxes[:, :2], bboxes[:, 2:] - bboxes[:, :2]], 1)


def coco_ground_truth(img_ids: Sequence[int], bboxes: Sequence[np.ndarray],
                      labels: Sequence[np.ndarray],
                      crowd: Sequence[np.ndarray], num_classes: int) -> COCO:
    """A COCO ground truth with category id = label, from per-image xyxy
    boxes, labels and crowd flags (mmdet's ``ignored_instances``)."""
    annotations = []
    for img_id, boxes, cats, crowds in zip(img_ids, bboxes, labels, crowd):
        for box, cat, is_crowd in zip(xyxy_to_xywh(boxes), cats, crowds):
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=int(img_id),
                    category_id=int(cat),
                    bbox=[float(v) for v in box],
                    area=float(box[2] * box[3]),
                    iscrowd=int(is_crowd)))
    return in_memory_coco(
        dict(
            images=[dict(id=int(i)) for i in img_ids],
            annotations=annotations,
            categories=[dict(id=c) for c in range(num_classes)]))


def coco_verdicts(coco_gt: COCO,
                  img_ids: Sequence[int],
                  cat_ids: Sequence[int],
                  det_img_ids: np.ndarray,
                  bboxes: np.ndarray,
                  scores: np.ndarray,
                  labels: np.ndarray,
                  iou_thrs: Sequence[float],
                  max_dets: int = 100) -> CocoVerdicts:
    """COCOeval's verdict on every detection at every IoU threshold: the
    lowest layer of judging, arrays in (:func:`.judge_image_arrays` and
    :func:`.judge_predictions` build on it).

    Args:
        coco_gt (COCO): Ground truth.
        img_ids (Sequence[int]): The images evaluated (``params.imgIds``).
        cat_ids (Sequence[int]): Category id of each label
            (``params.catIds``).
        det_img_ids (np.ndarray): ``(N,)`` image id of each detection.
        bboxes (np.ndarray): ``(N, 4)`` xyxy.
        scores (np.ndarray): ``(N,)``.
        labels (np.ndarray): ``(N,)`` indices into ``cat_ids``.
        iou_thrs (Sequence[float]): IoU thresholds (``params.iouThrs``).
        max_dets (int): Detections judged per image and category
            (``params.maxDets``). Defaults to 100, as COCO AP.

    Returns:
        CocoVerdicts: outcomes and IoUs ``(len(iou_thrs), N)``, ground truth
        counts ``(len(cat_ids),)``.
    """
    cat_ids = [int(c) for c in cat_ids]
    detections = coco_detections(det_img_ids, bboxes, scores,
                                 [cat_ids[label] for label in labels])
    evaluator = COCOeval(coco_gt, in_memory_coco(dict(annotations=detections)),
                         'bbox')
    params = evaluator.params
    params.imgIds = [int(i) for i in img_ids]
    params.catIds = cat_ids
    params.iouThrs = np.asarray(iou_thrs, dtype=np.float64)
    params.maxDets = [int(max_dets)]
    params.areaRng = params.areaRng[:1]  # 'all'
    params.areaRngLbl = params.areaRngLbl[:1]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
    return verdicts_of(evaluator, len(detections))


def coco_detections(det_img_ids: np.ndarray, bboxes: np.ndarray,
                    scores: np.ndarray, cat_ids: Sequence[int]) -> list:
    """COCO result dicts of xyxy detections; detection ``i`` has id
    ``i + 1``, by which COCOeval's verdicts come back."""
    return [
        dict(
            id=index + 1,
            image_id=int(img_id),
            category_id=int(cat_id),
            bbox=[float(v) for v in box],
            area=float(box[2] * box[3]),
            score=float(score),
            iscrowd=0) for index, (img_id, cat_id, box, score) in enumerate(
                zip(det_img_ids, cat_ids, xyxy_to_xywh(bboxes), scores))
    ]


def verdicts_of(evaluator: COCOeval, num_dets: int) -> CocoVerdicts:
    """The verdicts an evaluated ``COCOeval`` holds on detections of ids
    ``1..num_dets`` (one area range, one ``maxDets``)."""
    num_thrs = len(evaluator.params.iouThrs)
    cat_ids = list(evaluator.params.catIds)
    outcomes = np.full((num_thrs, num_dets), IGNORED, dtype=np.int8)
    ious = np.zeros((num_thrs, num_dets))
    label_of_cat = {c: k for k, c in enumerate(cat_ids)}
    num_gt = np.zeros(len(cat_ids), dtype=np.int64)
    for judged in evaluator.evalImgs:
        if judged is None:  # neither ground truth nor detections
            continue
        num_gt[label_of_cat[judged['category_id']]] += int(
            np.sum(judged['gtIgnore'] == 0))
        if not judged['dtIds']:
            continue
        index = np.asarray(judged['dtIds']) - 1
        matched = judged['dtMatches'] > 0
        ignored = judged['dtIgnore'].astype(bool)
        outcomes[:, index] = np.where(
            ignored, IGNORED, np.where(matched, TRUE_POSITIVE, FALSE_POSITIVE))
        overlaps = matched_overlaps(evaluator, judged)
        for thr, det in zip(*np.nonzero(matched & ~ignored)):
            gt_id = int(judged['dtMatches'][thr, det])
            ious[thr, index[det]] = overlaps[det][gt_id]
    return CocoVerdicts(outcomes, ious, num_gt)


def matched_overlaps(evaluator: COCOeval, judged: dict) -> list:
    """For each row of an image and category's IoU matrix
    (``evaluator.ious``), its IoU by ground-truth id.

    The rows are the score-sorted, truncated detections (the order of
    ``dtIds``); the columns the ground truth in the order
    ``COCO.getAnnIds`` lists it for that image and category, which is the
    order COCOeval loads it in.
    """
    img_id, cat_id = judged['image_id'], judged['category_id']
    gt_ids = evaluator.cocoGt.getAnnIds(imgIds=[img_id], catIds=[cat_id])
    return [dict(zip(gt_ids, row)) for row in evaluator.ious[img_id, cat_id]]
