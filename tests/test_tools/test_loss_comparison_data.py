"""What the loss comparison takes from a user: a COCO dataset checked
before anything trains (each failure names the file and what is wrong),
its classes read from the annotations, the validation images split by
image with the documented seed, the rows applied to whichever head a
config has; and its per-class metrics against hand-computed values."""
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
from mmengine.config import Config, ConfigDict

from mmdet_lossplug.loss_comparison import (ONE_STAGE, TWO_STAGE,
                                            per_class_metrics, prepare_coco)
from mmdet_lossplug.loss_comparison.process_pool import threads_per_job
from mmdet_lossplug.loss_comparison.training import build_config


def write_coco(path, images, boxes, categories=((1, 'cat'), (2, 'dog'))):
    """A COCO file of ``images`` (file names) and ``boxes``:
    ``(image index, category id, [x, y, w, h])``; the images are written
    as empty files beside it under ``img/``."""
    folder = osp.join(osp.dirname(path), 'img')
    coco = dict(
        images=[
            dict(id=i + 1, file_name=name, width=100, height=100)
            for i, name in enumerate(images)
        ],
        annotations=[
            dict(
                id=k + 1,
                image_id=i + 1,
                category_id=c,
                bbox=box,
                area=box[2] * box[3],
                iscrowd=0) for k, (i, c, box) in enumerate(boxes)
        ],
        categories=[dict(id=i, name=n) for i, n in categories])
    with open(path, 'w') as f:
        json.dump(coco, f)
    return folder


@pytest.fixture
def dataset(tmp_path):
    """Train: two images with a cat and a dog; val: six images."""
    (tmp_path / 'img').mkdir()
    names = [f'{i}.jpg' for i in range(8)]
    for name in names:
        (tmp_path / 'img' / name).write_bytes(b'')
    train = str(tmp_path / 'train.json')
    write_coco(train, names[:2], [(0, 1, [0, 0, 10, 10]),
                                  (1, 2, [5, 5, 20, 20])])
    val = str(tmp_path / 'val.json')
    write_coco(val, names[2:],
               [(i, 1 + i % 2, [0, 0, 10, 10]) for i in range(6)])
    return tmp_path, train, val


def test_a_dataset_is_prepared_with_its_classes_and_a_seeded_split(dataset):
    root, train, val = dataset
    images = str(root / 'img')
    data = prepare_coco(
        str(root / 'prepared'), (train, images), (val, images), split_seed=3)
    assert data.classes == ('cat', 'dog')
    parts = {
        part:
        json.loads((root / 'prepared' / 'annotations' /
                    f'instances_{part}.json').read_text())
        for part in ('train', 'val', 'calib', 'test')
    }
    # The documented split: val's image ids shuffled by
    # numpy.random.default_rng(seed); the first half calibrates.
    order = np.random.default_rng(3).permutation([1, 2, 3, 4, 5, 6])
    assert {i['id'] for i in parts['calib']['images']} == set(order[:3])
    assert {i['id'] for i in parts['test']['images']} == set(order[3:])
    assert len(parts['val']['images']) == 6
    assert {a['image_id']
            for a in parts['test']['annotations']} == set(order[3:])
    # absolute image paths, so the prepared files can live anywhere
    assert parts['train']['images'][0]['file_name'] == str(root / 'img' /
                                                           '0.jpg')


def test_a_separate_calibration_part_gets_ids_apart(dataset):
    root, train, val = dataset
    images = str(root / 'img')
    calib = str(root / 'calib.json')
    write_coco(calib, ['0.jpg', '1.jpg'], [(0, 2, [1, 1, 5, 5])])
    prepare_coco(
        str(root / 'prepared'), (train, images), (val, images),
        calib=(calib, images))
    annotations = root / 'prepared' / 'annotations'
    val_ids = [
        i['id']
        for i in json.loads((annotations /
                             'instances_val.json').read_text())['images']
    ]
    calib_ids = [
        i['id']
        for i in json.loads((annotations /
                             'instances_calib.json').read_text())['images']
    ]
    # the validation images' ids move past the calibration part's largest
    # (2): 1-6 become 4-9
    assert calib_ids == [1, 2]
    assert sorted(val_ids) == [1, 2, 4, 5, 6, 7, 8, 9]
    test = json.loads((annotations / 'instances_test.json').read_text())
    assert sorted(i['id'] for i in test['images']) == [4, 5, 6, 7, 8, 9]
    assert {a['image_id'] for a in test['annotations']} == {4, 5, 6, 7, 8, 9}


@pytest.mark.parametrize('images, boxes, message', [
    ([], [], 'no images'),
    (['0.jpg'], [], 'no boxes'),
    (['absent.jpg'], [
        (0, 1, [0, 0, 5, 5])
    ], '1 of its 1 images are not in .*img, e.g. absent.jpg'),
])
def test_bad_validation_files_are_named(dataset, images, boxes, message):
    root, train, _ = dataset
    bad = str(root / 'bad.json')
    write_coco(bad, images, boxes)
    folder = str(root / 'img')
    with pytest.raises(ValueError, match=f'{bad}: {message}'):
        prepare_coco(str(root / 'prepared'), (train, folder), (bad, folder))
    assert not (root / 'prepared').exists()  # nothing was written


def test_a_validation_class_the_training_set_lacks_is_named(dataset):
    root, _, val = dataset
    train = str(root / 'cats.json')
    write_coco(train, ['0.jpg'], [(0, 1, [0, 0, 5, 5])])
    folder = str(root / 'img')
    with pytest.raises(
            ValueError,
            match=f"{val}: classes \\['dog'\\] have boxes here but none in "
            f'the training set {train}'):
        prepare_coco(str(root / 'prepared'), (train, folder), (val, folder))


def test_a_missing_annotation_file_is_named(dataset):
    root, train, _ = dataset
    folder = str(root / 'img')
    absent = str(root / 'absent.json')
    with pytest.raises(ValueError, match=f'{absent}: no such annotation'):
        prepare_coco(str(root / 'p'), (train, folder), (absent, folder))


def test_the_dr_row_is_the_dr_variant_of_the_configs_head():
    for head, dr in (('RetinaHead', 'DRRetinaHead'),
                     ('ATSSHead', 'DRATSSHead'), ('FCOSHead', 'DRFCOSHead')):
        model = ConfigDict(
            bbox_head=dict(
                type=head, loss_cls=dict(type='FocalLoss', use_sigmoid=True)))
        assert ONE_STAGE.row('dr', model)['bbox_head']['type'] == dr
    ssd_like = ConfigDict(
        bbox_head=dict(
            type='GFLHead',
            loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True)))
    with pytest.raises(
            ValueError, match="row 'dr' needs a DR variant of "
            'GFLHead'):
        ONE_STAGE.check(ssd_like)
    # the other rows apply to it
    assert ONE_STAGE.row(
        'polyfocal',
        ssd_like)['bbox_head']['loss_cls']['type'] == 'PolyFocalLoss'


@pytest.mark.parametrize('comparison, model, message', [
    (ONE_STAGE, dict(bbox_head=dict(type='RetinaHead')),
     r'model.bbox_head \(RetinaHead\) has no classification loss'),
    (ONE_STAGE, dict(roi_head=dict()), 'model.bbox_head is missing'),
    (ONE_STAGE,
     dict(
         bbox_head=dict(
             type='SSDHead',
             loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False))),
     'replace a sigmoid loss'),
    (TWO_STAGE, dict(roi_head=dict(bbox_head=[dict(), dict()])),
     "a list, not one head .*cascade"),
    (TWO_STAGE, dict(roi_head=dict(bbox_head=dict(type='Shared2FCBBoxHead'))),
     'no classification loss'),
])
def test_a_head_no_row_can_change_is_named(comparison, model, message):
    # the config named first, then where in its model and what is wrong
    with pytest.raises(
            ValueError, match=f'^{re.escape(comparison.config)}: .*{message}'):
        comparison.check(ConfigDict(model))


def test_a_dataset_sets_the_classes_of_each_head(dataset, tmp_path):
    root, train, val = dataset
    images = str(root / 'img')
    data = prepare_coco(str(root / 'prepared'), (train, images), (val, images))
    import dataclasses
    for comparison, head in ((ONE_STAGE, ('bbox_head', )),
                             (TWO_STAGE, ('roi_head', 'bbox_head'))):
        mine = dataclasses.replace(comparison, data=data)
        cfg = build_config(mine, comparison.baseline, 0, 10, str(tmp_path))
        model = cfg.model
        for key in head:
            model = model[key]
        assert model.num_classes == 2
        assert cfg.train_dataloader.dataset.metainfo.classes == ('cat', 'dog')
        assert cfg.val_evaluator[0].ann_file == str(
            root / 'prepared' / 'annotations' / 'instances_val.json')
        assert cfg.test_evaluator.ann_file == str(
            root / 'prepared' / 'annotations' / 'instances_train.json')
    assert isinstance(cfg, Config)


def test_per_class_metrics_against_hand_computed_values(tmp_path):
    # cat: one object, a hit at 0.8 and a miss at 0.6; dog: one object,
    # one detection at 0.9 of IoU 0.64 (6.4 of its 10 px height).
    ann_file = str(tmp_path / 'gt.json')
    write_coco(ann_file, ['a.jpg', 'b.jpg'], [(0, 1, [0, 0, 10, 10]),
                                              (1, 2, [0, 0, 10, 10])])
    predictions = [
        dict(
            img_id=1,
            pred_instances=dict(
                bboxes=np.array([[0, 0, 10, 10], [50, 50, 60, 60]], float),
                scores=np.array([0.8, 0.6]),
                labels=np.array([0, 0]))),
        dict(
            img_id=2,
            pred_instances=dict(
                bboxes=np.array([[0, 0, 10, 6.4]]),
                scores=np.array([0.9]),
                labels=np.array([1])))
    ]
    metrics = per_class_metrics(predictions, ann_file, ('cat', 'dog'))
    cat, dog = metrics['cat'], metrics['dog']
    # cat: the hit comes first, recall 1 at precision 1 at every IoU.
    assert cat['coco/bbox_mAP'] == pytest.approx(1.0)
    assert cat['coco/bbox_mAP_50'] == pytest.approx(1.0)
    # D-ECE@0.5: each alone in a bin: (|1 - 0.8| + |0 - 0.6|) / 2.
    assert cat['calibration/d_ece_50'] == pytest.approx(0.4)
    # LaECE at IoU 0: (|1.0 - 0.8| + |0 - 0.6|) / 2
    assert cat['calibration/laece'] == pytest.approx(0.4)
    # dog: a hit at IoU 0.50, 0.55 and 0.60 of COCO's ten thresholds.
    assert dog['coco/bbox_mAP'] == pytest.approx(0.3)
    assert dog['coco/bbox_mAP_50'] == pytest.approx(1.0)
    assert dog['calibration/d_ece_50'] == pytest.approx(0.1)
    assert dog['calibration/laece'] == pytest.approx(0.9 - 0.64)
    # a class without objects has no AP; without detections no D-ECE
    empty = per_class_metrics(predictions[:1], ann_file, ('cat', 'dog'))
    assert np.isnan(empty['dog']['calibration/d_ece_50'])


def test_threads_are_of_the_cpus_a_scheduler_gave(monkeypatch):
    # a Slurm task bound to 3 of a node's 64 cores (--cpus-per-task=3)
    monkeypatch.setattr(os, 'cpu_count', lambda: 64)
    monkeypatch.setattr(
        os, 'sched_getaffinity', lambda pid: {4, 5, 6}, raising=False)
    assert threads_per_job(1) == 3 and threads_per_job(2) == 1
