import json
import os.path as osp
import subprocess
import sys

import pytest
from mmdet.datasets import CocoDataset, VOCDataset
from mmengine.registry import init_default_scope

from ..helpers import ROOT, run_tool

pytestmark = pytest.mark.integration  # runs the tools / trains

CLASSES = ('rectangle', 'ellipse', 'triangle')


def test_same_seed_same_dataset(tmp_path, shapes_root):
    run_tool('tools/misc/generate_shapes_dataset.py', str(tmp_path),
             '--num-train', '16', '--num-val', '8', '--seed', '0', '--formats',
             'coco')
    for split in ('train', 'val'):
        name = f'annotations/instances_{split}.json'
        with open(osp.join(shapes_root, name)) as f1, \
                open(osp.join(tmp_path, name)) as f2:
            assert json.load(f1) == json.load(f2)


def test_coco_and_voc_load_in_mmdet(shapes_root):
    init_default_scope('mmdet')
    coco = CocoDataset(
        data_root=shapes_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=CLASSES),
        pipeline=[])
    assert len(coco) == 16
    instances = [i for d in coco for i in d['instances']]
    assert {i['bbox_label'] for i in instances} == {0, 1, 2}
    for inst in instances:
        x1, y1, x2, y2 = inst['bbox']
        assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
        assert len(inst['mask'][0]) >= 6  # a polygon

    voc = VOCDataset(
        data_root=osp.join(shapes_root, 'VOCdevkit'),
        ann_file='VOC2007/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        metainfo=dict(classes=CLASSES),
        test_mode=True,
        pipeline=[])
    assert len(voc) == 8
    voc_boxes = [i['bbox'] for i in voc[0]['instances']]
    with open(osp.join(shapes_root, 'annotations/instances_val.json')) as f:
        coco_val = json.load(f)
    first = [a['bbox'] for a in coco_val['annotations'] if a['image_id'] == 1]
    assert len(voc_boxes) == len(first)
    for (x1, y1, x2, y2), (x, y, w, h) in zip(voc_boxes, first):
        assert abs(x1 - x) <= 1 and abs(x2 - (x + w)) <= 1
        assert abs(y1 - y) <= 1 and abs(y2 - (y + h)) <= 1


@pytest.mark.parametrize('args, message', [
    (('--num-train', '-3'), 'argument --num-train: must be an integer >= 1'),
    (('--num-val', '0'), 'argument --num-val: must be an integer >= 1'),
    (('--size', '8'), 'argument --size: must be an integer >= 16'),
    (('--num-train', '2.5'), "argument --num-train: not an integer: '2.5'"),
])
def test_bad_counts_exit_with_a_usage_error(tmp_path, args, message):
    proc = subprocess.run([
        sys.executable, 'tools/misc/generate_shapes_dataset.py',
        str(tmp_path), *args
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 2 and message in proc.stderr
    assert not list(tmp_path.iterdir())
