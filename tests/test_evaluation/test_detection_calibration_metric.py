"""D-ECE: matching on hand-made images, the metric on constructed
detections with a known answer, netcal's detection ECE, COCO-file ground
truth equal to data-sample ground truth, diagrams, bad input."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import METRICS
from mmengine.visualization import LocalVisBackend, Visualizer

from mmdet_lossplug.evaluation import (DetectionCalibrationMetric, ece,
                                       match_detections)
from mmdet_lossplug.evaluation.detection_calibration_metric import (
    FALSE_POSITIVE, IGNORED, TRUE_POSITIVE)

TP, FP, IGN = TRUE_POSITIVE, FALSE_POSITIVE, IGNORED


def _box(x, y, w=10.0, h=10.0):
    return [x, y, x + w, y + h]


def test_match_greedy_by_score_per_class():
    gt = np.array([_box(0, 0), _box(50, 50)], dtype=np.float32)
    gt_labels = np.array([0, 0])
    dets = np.array(
        [
            _box(0, 0),  # exact on gt 0, but scored lower than the next
            _box(1, 0),  # IoU 9/11 with gt 0, highest score: takes it
            _box(50, 50),  # gt 1, wrong class
            _box(51, 50),  # gt 1, right class
            _box(50, 55),  # gt 1 again (IoU 1/3), already taken anyway
        ],
        dtype=np.float32)
    scores = np.array([0.6, 0.9, 0.8, 0.5, 0.4])
    labels = np.array([0, 0, 1, 0, 0])
    outcome = match_detections(dets, scores, labels, gt, gt_labels,
                               np.zeros(2, bool), 0.5)
    assert outcome.tolist() == [FP, TP, FP, TP, FP]
    # At IoU 0.85 the 9/11 overlap no longer counts: the exact box matches.
    outcome = match_detections(dets, scores, labels, gt, gt_labels,
                               np.zeros(2, bool), 0.85)
    assert outcome.tolist() == [TP, FP, FP, FP, FP]


def test_match_ignored_ground_truth_and_empty_images():
    gt = np.array([_box(0, 0), _box(30, 30)], dtype=np.float32)
    dets = np.array([_box(0, 0), _box(30, 30), _box(80, 80)], dtype=np.float32)
    outcome = match_detections(dets, np.array([0.9, 0.8, 0.7]),
                               np.zeros(3, int), gt, np.zeros(2, int),
                               np.array([False, True]), 0.5)
    assert outcome.tolist() == [TP, IGN, FP]
    no_gt = match_detections(dets, np.array([0.9, 0.8, 0.7]), np.zeros(3, int),
                             np.zeros((0, 4), np.float32), np.zeros(0, int),
                             np.zeros(0, bool), 0.5)
    assert no_gt.tolist() == [FP, FP, FP]
    no_dets = match_detections(
        np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0, int), gt,
        np.zeros(2, int), np.zeros(2, bool), 0.5)
    assert no_dets.shape == (0, )


def _sample(img_id, dets, scores, labels, gt, gt_labels, ignored=None):
    """A data sample as the evaluator hands it to metrics (a dict)."""
    sample = dict(
        img_id=img_id,
        pred_instances=dict(
            bboxes=torch.tensor(dets, dtype=torch.float32).reshape(-1, 4),
            scores=torch.tensor(scores, dtype=torch.float32),
            labels=torch.tensor(labels)),
        gt_instances=dict(
            bboxes=torch.tensor(gt, dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor(gt_labels)))
    if ignored is not None:
        sample['ignored_instances'] = dict(
            bboxes=torch.tensor(ignored, dtype=torch.float32).reshape(-1, 4),
            labels=torch.zeros(len(ignored), dtype=torch.long))
    return sample


def _known_answer_samples():
    """Two images. Confidence 0.9: 3 of 4 detections hit at IoU 0.5;
    confidence 0.3: 2 of 4. One of the 0.9 hits overlaps its box by only
    IoU 0.6, so at IoU 0.75 that bin has 2 of 4."""
    shifted = _box(2.5, 0)  # IoU 7.5 / 12.5 = 0.6 with _box(0, 0)
    image1 = _sample(
        1,
        [_box(0, 0), shifted,
         _box(100, 100),
         _box(60, 0),
         _box(200, 200)],
        [0.9, 0.9, 0.9, 0.3, 0.5],
        [0, 1, 0, 0, 0],
        [_box(0, 0), _box(0, 0), _box(60, 0)],
        [0, 1, 0],
        # a detection on a crowd region counts in neither bin
        ignored=[_box(200, 200)])
    image2 = _sample(
        2, [_box(0, 0), _box(30, 0),
            _box(120, 0), _box(140, 0)], [0.9, 0.3, 0.3, 0.3], [1, 1, 1, 1],
        [_box(0, 0), _box(30, 0)], [1, 1])
    return [image1, image2]


def test_d_ece_known_answer():
    metric = METRICS.build(
        dict(type='DetectionCalibrationMetric', iou_thrs=(0.5, 0.75)))
    metric.process({}, _known_answer_samples())
    results = metric.compute_metrics(metric.results)
    # IoU 0.5: bin 0.9 precision 3/4 (gap 0.15), bin 0.3 precision 2/4
    # (gap 0.2), equal weights.
    assert results['d_ece_50'] == pytest.approx(0.5 * 0.15 + 0.5 * 0.2)
    assert results['d_mce_50'] == pytest.approx(0.2)
    # 10 equal-mass bins for 8 detections: one per bin, so adaptive D-ECE
    # is the mean |outcome - confidence|.
    assert results['adaptive_d_ece_50'] == pytest.approx(3.2 / 8)
    # IoU 0.75: bin 0.9 precision 2/4 (gap 0.4).
    assert results['d_ece_75'] == pytest.approx(0.5 * 0.4 + 0.5 * 0.2)
    assert results['d_mce_75'] == pytest.approx(0.4)


def test_metric_equals_ece_of_matches_and_netcal():
    netcal = pytest.importorskip('netcal.metrics')
    rng = np.random.default_rng(0)
    samples = []
    for img_id in range(40):
        gt = rng.uniform(0, 200, (6, 2))
        gt = np.concatenate([gt, gt + rng.uniform(10, 40, (6, 2))], 1)
        jitter = rng.normal(0, 4, (30, 4))
        dets = gt[rng.integers(0, 6, 30)] + jitter
        samples.append(
            _sample(img_id, dets, rng.uniform(0, 1, 30),
                    rng.integers(0, 2, 30), gt, rng.integers(0, 2, 6)))
    metric = DetectionCalibrationMetric(iou_thrs=(0.5, ), n_bins=10)
    metric.process({}, samples)
    conf, hits = metric.counted_detections(metric.results)
    assert len(conf) == 1200 and 0.1 < hits.mean() < 0.9
    results = metric.compute_metrics(metric.results)
    assert results['d_ece_50'] == pytest.approx(ece(conf, hits, 10))
    reference = netcal.ECE(bins=10, detection=True).measure(conf, hits)
    assert results['d_ece_50'] == pytest.approx(reference, abs=1e-9)


def test_coco_file_ground_truth_equals_sample_ground_truth(tmp_path):
    samples = _known_answer_samples()
    images, annotations = [], []
    for sample in samples:
        images.append(dict(id=sample['img_id'], width=300, height=300))
        parts = [(sample['gt_instances'], 0)]
        if 'ignored_instances' in sample:
            parts.append((sample['ignored_instances'], 1))
        for part, crowd in parts:
            for box, label in zip(part['bboxes'].tolist(),
                                  part['labels'].tolist()):
                x1, y1, x2, y2 = box
                annotations.append(
                    dict(
                        id=len(annotations) + 1,
                        image_id=sample['img_id'],
                        # category ids are not the labels
                        category_id=[7, 3][label],
                        bbox=[x1, y1, x2 - x1, y2 - y1],
                        area=(x2 - x1) * (y2 - y1),
                        iscrowd=crowd))
    ann_file = tmp_path / 'gt.json'
    ann_file.write_text(
        json.dumps(
            dict(
                images=images,
                annotations=annotations,
                categories=[dict(id=7, name='a'),
                            dict(id=3, name='b')])))
    from_file = DetectionCalibrationMetric(ann_file=str(ann_file))
    from_file.dataset_meta = dict(classes=('a', 'b'))
    for sample in samples:
        del sample['gt_instances']
        sample.pop('ignored_instances', None)
    from_file.process({}, samples)
    results = from_file.compute_metrics(from_file.results)
    assert results['d_ece_50'] == pytest.approx(0.175)
    assert results['d_ece_75'] == pytest.approx(0.3)


def test_score_threshold_drops_low_confidences():
    metric = DetectionCalibrationMetric(iou_thrs=(0.5, ), score_thr=0.5)
    metric.process({}, _known_answer_samples())
    results = metric.compute_metrics(metric.results)
    # Left: the 0.9 bin (3 of 4); the 0.5 detection is on a crowd region.
    assert results['d_ece_50'] == pytest.approx(0.15)


def test_diagrams_to_out_dir_and_visualizer(tmp_path):
    visualizer = Visualizer.get_instance(
        'test_detection_calibration',
        vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path / 'vis'))
    metric = DetectionCalibrationMetric(out_dir=str(tmp_path / 'diagrams'))
    metric.process({}, _known_answer_samples())
    metric.compute_metrics(metric.results)
    for key in ('50', '75'):
        assert osp.getsize(tmp_path / 'diagrams' /
                           f'reliability_iou{key}.png') > 1000
    backend = visualizer.get_backend('LocalVisBackend')
    assert isinstance(backend, LocalVisBackend)
    saved = sorted(
        p.name.rsplit('_', 1)[0]
        for p in (tmp_path / 'vis' / 'vis_data' / 'vis_image').iterdir())
    assert saved == ['reliability_iou50', 'reliability_iou75']


def test_bad_input(caplog):
    with pytest.raises(ValueError, match='iou_thrs'):
        DetectionCalibrationMetric(iou_thrs=(0.0, ))
    with pytest.raises(ValueError, match='n_bins'):
        DetectionCalibrationMetric(n_bins=0)
    metric = DetectionCalibrationMetric()
    sample = _known_answer_samples()[0]
    del sample['gt_instances']
    with pytest.raises(ValueError, match='LoadAnnotations'):
        metric.process({}, [sample])
    sample = _known_answer_samples()[0]
    sample['pred_instances']['scores'][0] = float('nan')
    with pytest.raises(ValueError, match='NaN'):
        metric.process({}, [sample])
    # No detections at all: NaN with a warning, not a crash.
    empty = _sample(3, np.zeros((0, 4)), [], [], [_box(0, 0)], [0])
    metric.process({}, [empty])
    results = metric.compute_metrics(metric.results)
    assert all(np.isnan(v) for v in results.values())
