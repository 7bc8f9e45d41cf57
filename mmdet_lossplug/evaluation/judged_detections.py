"""Detections of a set of images with COCO AP's verdict on each: which
count (not ignored) and which hit, at every IoU threshold judged.

Three layers, each built on the one below:

- :func:`judge_predictions`: predictions as mmdet's evaluator hands them
  to metrics (or as ``tools/test.py --out`` dumps them), one dict per image
  with ``img_id``, ``pred_instances`` and, unless the ground truth comes
  from a COCO file, ``gt_instances`` and ``ignored_instances`` (crowd);
  each turned into arrays by :func:`image_arrays`, then
- :func:`judge_image_arrays`: those per-image arrays, all images at once;
- :func:`.coco_verdicts.coco_verdicts`: the matching itself, pycocotools'
  ``COCOeval`` on flat arrays.

All give or build a :class:`JudgedDetections`.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmdet.datasets.api_wrappers import COCO
from mmengine.fileio import get_local_path

from .coco_verdicts import (IGNORED, TRUE_POSITIVE, CocoVerdicts,
                            coco_ground_truth, coco_verdicts)
from .functional import to_numpy


@dataclass
class JudgedDetections:
    """``N`` detections and COCOeval's verdicts on them.

    Attributes:
        scores (np.ndarray): ``(N,)`` confidences.
        labels (np.ndarray): ``(N,)`` class indices.
        iou_thrs (tuple[float]): The IoU thresholds judged, in the order of
            the verdicts' rows.
        verdicts (CocoVerdicts): Outcomes and IoUs ``(T, N)`` and ground
            truth per class.
    """
    scores: np.ndarray
    labels: np.ndarray
    iou_thrs: Tuple[float, ...]
    verdicts: CocoVerdicts

    def _row(self, iou_thr: float) -> int:
        if iou_thr not in self.iou_thrs:
            raise ValueError(f'IoU {iou_thr} was not judged (judged: '
                             f'{self.iou_thrs})')
        return self.iou_thrs.index(iou_thr)

    def counted(self, iou_thr: float) -> np.ndarray:
        """``(N,)`` bool: judged at ``iou_thr`` (not crowd-matched, not past
        maxDets)."""
        return self.verdicts.outcomes[self._row(iou_thr)] != IGNORED

    def hits(self, iou_thr: float) -> np.ndarray:
        """``(N,)`` bool: a true positive at ``iou_thr``."""
        return self.verdicts.outcomes[self._row(iou_thr)] == TRUE_POSITIVE

    def ious(self, iou_thr: float) -> np.ndarray:
        """``(N,)`` IoU of each true positive at ``iou_thr``, 0 for the
        others."""
        return self.verdicts.ious[self._row(iou_thr)]

    def confidences_and_hits(self,
                             iou_thr: float) -> Tuple[np.ndarray, np.ndarray]:
        """Confidences and 0/1 outcomes (float) of the detections counted
        at ``iou_thr``: what D-ECE bins."""
        counted = self.counted(iou_thr)
        return self.scores[counted], self.hits(iou_thr)[counted].astype(
            np.float64)


def load_coco(ann_file: str, backend_args: Optional[dict] = None) -> COCO:
    """The COCO ground truth of an annotation file (any mmengine
    backend)."""
    with get_local_path(ann_file, backend_args=backend_args) as path:
        return COCO(path)


def _sample_ground_truth(data_sample: dict):
    if 'gt_instances' not in data_sample:
        raise ValueError(
            f'image {data_sample.get("img_id")}: the data sample has no '
            'gt_instances to judge against: keep LoadAnnotations in the '
            'test pipeline, or give the ground truth as a COCO file '
            "(coco_gt; the metric's ann_file)")
    parts = [data_sample['gt_instances']]
    if 'ignored_instances' in data_sample:
        parts.append(data_sample['ignored_instances'])
    bboxes = np.concatenate(
        [to_numpy(p['bboxes'], np.float64).reshape(-1, 4) for p in parts])
    labels = np.concatenate(
        [to_numpy(p['labels'], np.int64).reshape(-1) for p in parts])
    crowd = np.arange(len(labels)) >= len(parts[0]['labels'])
    return bboxes, labels, crowd


def image_arrays(data_sample: dict,
                 score_thr: float = 0.0,
                 with_ground_truth: bool = True) -> dict:
    """One image's detections with ``score >= score_thr`` (checked), and
    its ground truth ``(bboxes, labels, crowd)`` if ``with_ground_truth``
    (else ``None``), as arrays: what :func:`judge_image_arrays` takes."""
    img_id = data_sample.get('img_id')
    pred = data_sample['pred_instances']
    scores = to_numpy(pred['scores'], np.float64).reshape(-1)
    bboxes = to_numpy(pred['bboxes'], np.float64).reshape(-1, 4)
    labels = to_numpy(pred['labels'], np.int64).reshape(-1)
    if not len(scores) == len(bboxes) == len(labels):
        raise ValueError(
            f'image {img_id}: pred_instances hold {len(bboxes)} '
            f'bboxes, {len(scores)} scores and {len(labels)} labels;'
            ' they must be equally many')
    if not np.all((scores >= 0) & (scores <= 1)):
        raise ValueError(f'image {img_id}: detection scores must lie in '
                         f'[0, 1] (no NaN), got e.g. '
                         f'{scores[~((scores >= 0) & (scores <= 1))][0]}')
    if len(labels) and labels.min() < 0:
        raise ValueError(f'image {img_id}: negative label {labels.min()}')
    keep = scores >= score_thr
    return dict(
        img_id=img_id,
        bboxes=bboxes[keep],
        scores=scores[keep],
        labels=labels[keep],
        gt=_sample_ground_truth(data_sample) if with_ground_truth else None)


def category_ids(images: Sequence[dict],
                 classes: Optional[Sequence[str]] = None,
                 coco_gt: Optional[COCO] = None) -> List[int]:
    """The category id of each label: the COCO file's ids of ``classes``,
    else the label itself (up to the largest label seen without
    ``classes``)."""
    if coco_gt is not None:
        if not classes:
            raise ValueError('judging against a COCO file (coco_gt; '
                             "DetectionCalibrationMetric's ann_file) needs "
                             'the classes (dataset_meta) to map labels to '
                             'its category ids')
        return coco_gt.get_cat_ids(cat_names=classes)
    if classes:
        return list(range(len(classes)))
    labels = [r['labels'] for r in images] + [r['gt'][1] for r in images]
    return list(range(int(np.concatenate(labels).max(initial=0)) + 1))


def judge_image_arrays(images: Sequence[dict],
                       iou_thrs: Sequence[float],
                       classes: Optional[Sequence[str]] = None,
                       coco_gt: Optional[COCO] = None,
                       max_dets: int = 100) -> JudgedDetections:
    """COCOeval's verdicts on the detections of ``images`` (as
    :func:`image_arrays` gives them), against ``coco_gt`` by ``img_id``
    or, without it, each image's own ground truth."""
    if not images:
        raise ValueError('no images to judge (an empty dataset, '
                         'dataloader or predictions list)')
    cat_ids = category_ids(images, classes, coco_gt)
    labels = np.concatenate([r['labels'] for r in images])
    if len(labels) and labels.max() >= len(cat_ids):
        raise ValueError(f'a detection has label {labels.max()}, but '
                         f'there are {len(cat_ids)} classes')
    if coco_gt is None:
        # The ground truth travels with each image: number them.
        img_ids = list(range(len(images)))
        coco_gt = coco_ground_truth(img_ids, [r['gt'][0] for r in images],
                                    [r['gt'][1] for r in images],
                                    [r['gt'][2] for r in images], len(cat_ids))
    else:
        img_ids = [r['img_id'] for r in images]
        if len(set(img_ids)) != len(img_ids):
            raise ValueError('an img_id was given twice: judging against '
                             'a COCO file (coco_gt) needs each image once')
    det_img_ids = np.concatenate([
        np.full(len(r['scores']), img_id)
        for img_id, r in zip(img_ids, images)
    ])
    scores = np.concatenate([r['scores'] for r in images])
    iou_thrs = tuple(float(t) for t in iou_thrs)
    verdicts = coco_verdicts(
        coco_gt,
        img_ids,
        cat_ids,
        det_img_ids,
        np.concatenate([r['bboxes'] for r in images]).reshape(-1, 4),
        scores,
        labels,
        iou_thrs,
        max_dets=max_dets)
    return JudgedDetections(scores, labels, iou_thrs, verdicts)


def judge_predictions(predictions: Sequence[dict],
                      iou_thrs: Sequence[float],
                      classes: Optional[Sequence[str]] = None,
                      coco_gt: Optional[COCO] = None,
                      max_dets: int = 100,
                      score_thr: float = 0.0) -> JudgedDetections:
    """COCOeval's verdicts on every detection of ``predictions`` (one dict
    per image, as metrics receive them) at every IoU of ``iou_thrs``.

    Args:
        predictions (Sequence[dict]): ``img_id``, ``pred_instances`` and,
            without ``coco_gt``, ``gt_instances`` (and ``ignored_instances``
            for crowd regions).
        iou_thrs (Sequence[float]): IoU thresholds to judge at.
        classes (Sequence[str], optional): The dataset's classes; needed
            with ``coco_gt`` to map labels to its category ids.
        coco_gt (COCO, optional): Ground truth by ``img_id``
            (:func:`load_coco`).
        max_dets (int): Detections judged per image and class. Defaults to
            100 (COCO AP's).
        score_thr (float): Detections below it are dropped first. Defaults
            to 0.

    Returns:
        JudgedDetections: the kept detections, image by image, and the
        verdicts.
    """
    return judge_image_arrays([
        image_arrays(p, score_thr, with_ground_truth=coco_gt is None)
        for p in predictions
    ], iou_thrs, classes, coco_gt, max_dets)
