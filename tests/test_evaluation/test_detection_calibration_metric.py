"""D-ECE, LaECE and LRP of DetectionCalibrationMetric on scenes whose
answer is worked out by hand (crowd, maxDets, score order, a ground truth
taken once, bin edges), COCOeval's own AP recomputed from the metric's
verdicts, netcal's detection ECE, COCO-file ground truth equal to
data-sample ground truth, diagrams, bad input."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import METRICS
from mmengine.visualization import LocalVisBackend, Visualizer
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmdet_lossplug.evaluation import (DetectionCalibrationMetric,
                                       detection_calibration_errors,
                                       judge_predictions)
from mmdet_lossplug.evaluation.coco_verdicts import (FALSE_POSITIVE, IGNORED,
                                                     TRUE_POSITIVE)

TP, FP, IGN = TRUE_POSITIVE, FALSE_POSITIVE, IGNORED


def _box(x, y, w=10.0, h=10.0):
    return [x, y, x + w, y + h]


def _sample(img_id,
            dets,
            scores,
            labels,
            gt,
            gt_labels,
            crowd=None,
            crowd_labels=None):
    """A data sample as the evaluator hands it to metrics (a dict)."""
    sample = dict(
        img_id=img_id,
        pred_instances=dict(
            bboxes=torch.tensor(dets, dtype=torch.float32).reshape(-1, 4),
            scores=torch.tensor(scores, dtype=torch.float32),
            labels=torch.tensor(labels, dtype=torch.long)),
        gt_instances=dict(
            bboxes=torch.tensor(gt, dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor(gt_labels, dtype=torch.long)))
    if crowd is not None:
        sample['ignored_instances'] = dict(
            bboxes=torch.tensor(crowd, dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor(
                crowd_labels if crowd_labels is not None else [0] * len(crowd),
                dtype=torch.long))
    return sample


def _evaluate(samples, **kwargs):
    metric = DetectionCalibrationMetric(**kwargs)
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def test_detection_on_a_crowd_region_is_ignored_as_coco_does():
    # The case: one image, a correct detection (0.9) and one inside
    # a crowd region (0.8). Its IoU with the crowd box is 100 / 10000, but
    # COCO measures crowd overlap over the detection's area (1.0): ignored.
    # Left: the 0.9 true positive alone, D-ECE |1 - 0.9| = 10 %.
    sample = _sample(
        1, [_box(0, 0), _box(120, 120)], [0.9, 0.8], [0, 0], [_box(0, 0)], [0],
        crowd=[_box(100, 100, 100, 100)])
    results = _evaluate([sample], iou_thrs=0.5)
    assert results['d_ece_50'] == pytest.approx(0.10)
    # Two detections on one crowd region: a crowd takes any number.
    sample = _sample(
        1, [_box(0, 0), _box(120, 120),
            _box(150, 150)], [0.9, 0.8, 0.7], [0, 0, 0], [_box(0, 0)], [0],
        crowd=[_box(100, 100, 100, 100)])
    assert _evaluate([sample], iou_thrs=0.5)['d_ece_50'] == pytest.approx(0.1)


def test_max_dets_leaves_the_lowest_scores_unjudged():
    # One object; a correct detection scored below two wrong ones.
    sample = _sample(
        1, [_box(50, 50), _box(80, 80), _box(0, 0)], [0.9, 0.8, 0.7],
        [0, 0, 0], [_box(0, 0)], [0])
    # maxDets 2: only the two false positives are judged: (0.9 + 0.8) / 2.
    limited = _evaluate([sample], iou_thrs=0.5, max_dets=2)
    assert limited['d_ece_50'] == pytest.approx(0.85)
    # All three, one per bin: (0.9 + 0.8 + |1 - 0.7|) / 3.
    everything = _evaluate([sample], iou_thrs=0.5)
    assert everything['d_ece_50'] == pytest.approx(2 / 3)


def test_matching_by_score_and_each_ground_truth_once():
    # One object; d1 exact (score 0.6), d2 IoU 9/11 (0.9), d3 IoU 9/11 (0.3).
    # COCO takes them by score: d2 takes the object, d1 and d3 find it
    # taken. Ten bins, one detection each: D-ECE is the mean of
    # |outcome - score| = (|0 - .6| + |1 - .9| + |0 - .3|) / 3 = 1/3.
    # Matched in input order instead: (.4 + .9 + .3) / 3; with the object
    # free for every detection: (.4 + .1 + .7) / 3.
    sample = _sample(
        1, [_box(0, 0), _box(1, 0), _box(0, 1)], [0.6, 0.9, 0.3], [0, 0, 0],
        [_box(0, 0)], [0])
    results = _evaluate([sample], iou_thrs=(0.5, 0.85))
    assert results['d_ece_50'] == pytest.approx(1 / 3)
    # At IoU 0.85 only d1 (exact) can match: (.4 + .9 + .3) / 3.
    assert results['d_ece_85'] == pytest.approx(1.6 / 3)


def test_bins_are_right_closed():
    # Three objects, all found: scores 0.5 (hit), 0.4 (miss), 0.9 (hit),
    # two bins. (0, .5] holds 0.4 and 0.5: confidence .45, precision .5,
    # weight 2/3; (.5, 1] holds 0.9: gap .1, weight 1/3. D-ECE 1/15.
    # Were 0.5 in the upper bin: .4 / 3 + .3 * 2 / 3 = 1/3.
    sample = _sample(
        1, [_box(0, 0), _box(200, 0), _box(60, 0)], [0.5, 0.4, 0.9], [0, 0, 0],
        [_box(0, 0), _box(30, 0), _box(60, 0)], [0, 0, 0])
    results = _evaluate([sample], iou_thrs=0.5, n_bins=2)
    assert results['d_ece_50'] == pytest.approx(1 / 15)
    assert results['d_mce_50'] == pytest.approx(0.1)


def _laece_scene():
    """Four classes. Detections inside a 10x10 object cover a fraction of
    it, so their IoU is that fraction: 8x10 -> 0.8."""
    image1 = _sample(
        1,
        [_box(0, 0, 8, 10), _box(50, 50, 5, 10)],
        [0.9, 0.5],
        [0, 1],  # class 0 IoU 0.8, class 1 IoU 0.5
        [_box(0, 0), _box(50, 50)],
        [0, 1])
    image2 = _sample(
        2,
        [_box(0, 0, 6, 10), _box(110, 110)],
        [0.2, 0.95],
        [0, 0],  # class 0 IoU 0.6; the other is on a crowd region
        [_box(0, 0), _box(300, 0),
         _box(300, 50),
         _box(300, 100)],
        [0, 3, 3, 3],  # class 3: three objects, never detected
        crowd=[_box(100, 100, 50, 50)])
    image3 = _sample(  # no ground truth: both false positives
        3, [_box(0, 0), _box(20, 20)], [0.5, 0.7], [0, 2], [], [])
    return [image1, image2, image3]


def test_laece_and_lrp_by_hand():
    results = _evaluate(
        _laece_scene(), laece_iou_thr=0.1, laece_n_bins=2, iou_thrs=0.5)
    # Class 0: scores .9 (IoU .8), .5 (false positive, IoU 0), .2 (IoU .6);
    # the crowd detection is ignored. Bins (0, .5]: {.5, .2}, IoU sum .6,
    # score sum .7; (.5, 1]: {.9}, .8 against .9. LaECE_0 = (|.6 - .7| +
    # |.8 - .9|) / 3 = 1/15. Class 1: .5 with IoU .5: 0. Class 2 has no
    # ground truth and class 3 no detections: left out. Mean 1/30.
    assert results['laece'] == pytest.approx(1 / 30)
    # LRP at tau = .1, per class (sum(1 - IoU) / .9 + FP + FN) / (TP + FP +
    # FN): class 0 (.6 / .9 + 1 + 0) / 3 = 5/9; class 1 (.5 / .9) / 1 =
    # 5/9; class 3 no TP: 1. Mean 19/27.
    assert results['lrp'] == pytest.approx(19 / 27)
    # Localisation: class 0 .6 / 2, class 1 .5 / 1; FP share: 1/3 and 0;
    # FN share: 0, 0 and 3/3.
    assert results['lrp_loc'] == pytest.approx(0.4)
    assert results['lrp_fp'] == pytest.approx(1 / 6)
    assert results['lrp_fn'] == pytest.approx(1 / 3)


def test_laece_threshold_zero_matches_at_iou_zero():
    # One object, one detection (0.6) that does not overlap it at all.
    sample = _sample(1, [_box(100, 100)], [0.6], [0], [_box(0, 0)], [0])
    # At threshold 0 COCOeval lets it take the object: a true positive of
    # IoU 0. LaECE |0 - 0.6| as for a false positive; LRP: TP 1, FP 0,
    # FN 0, localisation error 1: (1 / 1) / 1 = 1, nothing missed.
    at_zero = _evaluate([sample], iou_thrs=0.5, laece_iou_thr=0.0)
    assert at_zero['laece'] == pytest.approx(0.6)
    assert (at_zero['lrp'], at_zero['lrp_loc'], at_zero['lrp_fp'],
            at_zero['lrp_fn']) == (1, 1, 0, 0)
    # At 0.1 it is a false positive and the object is missed.
    at_tenth = _evaluate([sample], iou_thrs=0.5, laece_iou_thr=0.1)
    assert at_tenth['laece'] == pytest.approx(0.6)
    assert at_tenth['lrp'] == 1 and at_tenth['lrp_fn'] == 1
    assert np.isnan(at_tenth['lrp_loc']) and np.isnan(at_tenth['lrp_fp'])


def _coco_ap_from_verdicts(scores, labels, verdicts, thr_index, label):
    """COCO's 101-point interpolated AP of one class, recomputed from the
    metric's verdicts (the accumulate step of COCOeval, written out)."""
    outcomes = verdicts.outcomes[thr_index]
    keep = (labels == label) & (outcomes != IGNORED)
    order = np.argsort(-scores[keep], kind='mergesort')
    hits = outcomes[keep][order] == TP
    tp, fp = np.cumsum(hits), np.cumsum(~hits)
    recall = tp / verdicts.num_gt[label]
    precision = tp / np.maximum(tp + fp, np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.searchsorted(recall, np.linspace(0, 1, 101), side='left')
    return np.sum(precision[points[points < len(precision)]]) / 101


def test_verdicts_give_cocoevals_own_ap():
    rng = np.random.default_rng(0)
    samples = []
    for img_id in range(30):
        gt = rng.uniform(0, 200, (6, 2))
        gt = np.concatenate([gt, gt + rng.uniform(10, 40, (6, 2))], 1)
        crowd = rng.uniform(0, 200, (1, 2))
        crowd = np.concatenate([crowd, crowd + 60], 1)
        dets = np.concatenate([gt, crowd])[rng.integers(0, 7, 30)]
        dets = dets + rng.normal(0, 4, (30, 4))
        samples.append(
            _sample(
                img_id,
                dets,
                rng.uniform(0, 1, 30),
                rng.integers(0, 2, 30),
                gt,
                rng.integers(0, 2, 6),
                crowd=crowd,
                crowd_labels=[img_id % 2]))
    judged = judge_predictions(samples, (0.5, 0.75, 0.0), max_dets=10)
    scores, labels, verdicts = judged.scores, judged.labels, judged.verdicts
    with pytest.raises(ValueError, match='IoU 0.6 was not judged'):
        judged.counted(0.6)
    assert (verdicts.outcomes == IGN).any() and (verdicts.outcomes == TP).any()

    # The oracle: COCOeval on a results list loaded the usual way.
    images, annotations, results = [], [], []
    for sample in samples:
        images.append(dict(id=sample['img_id']))
        gts = [(sample['gt_instances'], 0), (sample['ignored_instances'], 1)]
        for part, crowd in gts:
            for box, label in zip(part['bboxes'].tolist(),
                                  part['labels'].tolist()):
                annotations.append(
                    dict(
                        id=len(annotations) + 1,
                        image_id=sample['img_id'],
                        category_id=label,
                        bbox=[
                            box[0], box[1], box[2] - box[0], box[3] - box[1]
                        ],
                        area=(box[2] - box[0]) * (box[3] - box[1]),
                        iscrowd=crowd))
        pred = sample['pred_instances']
        for box, score, label in zip(pred['bboxes'].tolist(),
                                     pred['scores'].tolist(),
                                     pred['labels'].tolist()):
            results.append(
                dict(
                    image_id=sample['img_id'],
                    category_id=label,
                    bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]],
                    score=score))
    coco = COCO()
    coco.dataset = dict(
        images=images,
        annotations=annotations,
        categories=[dict(id=0), dict(id=1)])
    coco.createIndex()
    evaluator = COCOeval(coco, coco.loadRes(results), 'bbox')
    evaluator.params.iouThrs = np.array([0.5, 0.75])
    evaluator.params.maxDets = [10]
    evaluator.evaluate()
    evaluator.accumulate()
    for t in range(2):
        for label in range(2):
            ours = _coco_ap_from_verdicts(scores, labels, verdicts, t, label)
            reference = evaluator.eval['precision'][t, :, label, 0, 0].mean()
            assert ours == pytest.approx(reference, abs=1e-12), (t, label)
    # netcal's detection ECE of the judged detections (10 bins).
    netcal = pytest.importorskip('netcal.metrics')
    conf, hits = judged.confidences_and_hits(0.5)
    reference = netcal.ECE(bins=10, detection=True).measure(conf, hits)
    assert detection_calibration_errors(
        judged, (0.5, 0.75))['d_ece_50'] == pytest.approx(
            reference, abs=1e-9)


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
        crowd=[_box(200, 200)])
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
    # Left: the 0.9 bin (3 of 4); the 0.5 detection is on a crowd region.
    results = _evaluate(_known_answer_samples(), iou_thrs=0.5, score_thr=0.5)
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


def test_metric_names_and_thresholds():
    results = _evaluate(_known_answer_samples(), iou_thrs=(0.5, 0.504))
    assert {'d_ece_50', 'd_ece_50p4', 'laece', 'lrp'} <= set(results)
    # A single number is one threshold.
    assert DetectionCalibrationMetric(iou_thrs=0.5).iou_thrs == (0.5, )
    for bad in ((0.5, 0.5), (0.5, 0.5000000001)):
        with pytest.raises(ValueError, match='same metric name'):
            DetectionCalibrationMetric(iou_thrs=bad)
    for bad in ((0.0, ), (), '0.5', (1.5, )):
        with pytest.raises(ValueError, match='iou_thrs'):
            DetectionCalibrationMetric(iou_thrs=bad)


def test_bad_input():
    for kwargs, name in ((dict(n_bins=0), 'n_bins'),
                         (dict(n_bins=2.5), 'n_bins'), (dict(laece_n_bins=0),
                                                        'n_bins'),
                         (dict(laece_iou_thr=1.0), 'laece_iou_thr'),
                         (dict(max_dets=0), 'max_dets'), (dict(score_thr=-0.1),
                                                          'score_thr')):
        with pytest.raises(ValueError, match=name):
            DetectionCalibrationMetric(**kwargs)
    metric = DetectionCalibrationMetric()
    with pytest.raises(ValueError, match='no images'):
        metric.compute_metrics([])
    sample = _known_answer_samples()[0]
    del sample['gt_instances']
    with pytest.raises(ValueError, match='LoadAnnotations'):
        metric.process({}, [sample])
    for bad in (float('nan'), -0.2, 1.5):
        sample = _known_answer_samples()[0]
        sample['pred_instances']['scores'][0] = bad
        with pytest.raises(ValueError, match=r'image 1: .*scores .*\[0, 1\]'):
            metric.process({}, [sample])
    sample = _known_answer_samples()[0]
    sample['pred_instances']['scores'] = torch.tensor([0.5, 0.6])
    with pytest.raises(ValueError, match='5 bboxes, 2 scores'):
        metric.process({}, [sample])
    assert not metric.results
    # No detections at all: NaN with a warning, not a crash.
    empty = _sample(3, np.zeros((0, 4)), [], [], [_box(0, 0)], [0])
    metric.process({}, [empty])
    results = metric.compute_metrics(metric.results)
    assert np.isnan(results['d_ece_50']) and np.isnan(results['laece'])
    assert results['lrp'] == 1 and results['lrp_fn'] == 1
