"""tools/analysis/compare_losses.py (the README's run command): its table
against hand-computed means and sample deviations, what a missing metric
means, the schedule rescaled to the run length, a tiny run of both
comparisons over two seeds side by side on the real in-site tiles (its AP50
against COCOeval on the test part, the temperature fitted on the
calibration part) and the same command again reading each run's
result.json, which settings make a run another one, and a failing run."""
import dataclasses
import json
import math
import os
import os.path as osp
import shutil
import statistics
import subprocess
import sys

import mmengine
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mmdet_lossplug.loss_comparison import (ONE_STAGE, TABLE_COLUMNS,
                                            TWO_STAGE, format_differences,
                                            format_table, reported)
from mmdet_lossplug.loss_comparison.training import (RESULT_FILE, build_config,
                                                     finished_run,
                                                     run_fingerprint)
from ..helpers import ROOT, load_tool, run_tool

pytestmark = pytest.mark.integration  # runs the tools / trains


def test_table_is_mean_and_sample_std_over_seeds():
    ap, ap50, d_ece, laece, fit = (key for key, _ in TABLE_COLUMNS)
    seeds = [{
        ap: 0.10,
        ap50: 0.30,
        d_ece: 0.05,
        laece: 0.07,
        fit: 0.80,
        'minutes': 1.0
    }, {
        ap: 0.30,
        ap50: 0.50,
        d_ece: 0.15,
        laece: 0.09,
        fit: 0.90,
        'minutes': 2.0
    }]
    rows = format_table({'focal': seeds}).splitlines()
    assert rows[0] == ('| loss | seeds | AP (%) | AP50 (%) | D-ECE@0.5 (%) | '
                       'LaECE (%) | train-tile AP50 (%) | train min |')
    # 10 and 30: mean 20, sample (n - 1) deviation 14.1
    assert f'{statistics.stdev([10, 30]):.1f}' == '14.1'
    assert rows[2] == ('| focal | 2 | 20.0 ± 14.1 | 40.0 ± 14.1 | 10.0 ± 7.1 '
                       '| 8.0 ± 1.4 | 85.0 ± 7.1 | 1.5 ± 0.7 |')
    # one seed has no spread to show
    one = format_table({'focal': seeds[:1]}).splitlines()[2]
    assert one == '| focal | 1 | 10.0 | 30.0 | 5.0 | 7.0 | 80.0 | 1.0 |'


def test_differences_from_focal_with_welch_p():
    keys = [key for key, _ in TABLE_COLUMNS]

    def runs(*values):
        return [{key: v / 100 for key in keys} for v in values]

    # 3 and 5 against 0 and 2: a gap of 3, each sample's variance 2, so
    # t = 3 / sqrt(2/2 + 2/2) on Welch's 2 degrees of freedom, where the
    # t distribution's CDF is 1/2 + t / (2 sqrt(2 + t^2)): two-sided
    # p = 1 - t / sqrt(2 + t^2).
    t = 3 / math.sqrt(2)
    p = 1 - t / math.sqrt(2 + t * t)
    assert f'{p:.3f}' == '0.168'
    assert ONE_STAGE.baseline == 'focal'
    rows = format_differences(
        {
            'focal': runs(0, 2),
            'dr': runs(3, 5),
            ONE_STAGE.temperature_row: runs(0, 2)
        },
        ONE_STAGE.baseline,
        skipped=(ONE_STAGE.temperature_row, )).splitlines()
    assert len(rows) == 3  # header, rule, dr: not focal itself, not focal + T
    assert rows[0].startswith('| loss | AP vs focal | AP50 vs focal |')
    assert rows[2] == '| dr |' + ' +3.0 (p 0.168) |' * len(keys)


def test_a_missing_ap_is_zero_a_missing_calibration_error_is_an_error():
    # mmdet's CocoMetric returns {} when nothing was detected
    assert reported({}, 'coco/bbox_mAP_50') == 0.0
    assert reported({'coco/bbox_mAP_50': 0.25}, 'coco/bbox_mAP_50') == 0.25
    with pytest.raises(KeyError, match='calibration/d_ece_50'):
        reported({}, 'calibration/d_ece_50')


def compare_losses(work_dir, *args, pretrained_root, check=True):
    """The run command on ``work_dir`` with the converted weights."""
    command = [
        osp.join(ROOT, 'tools', 'analysis', 'compare_losses.py'), '--work-dir',
        str(work_dir), *args
    ]
    env = dict(os.environ, PRETRAINED_ROOT=str(pretrained_root))
    if check:
        return run_tool(*command, env=env)
    return subprocess.run([sys.executable, *command],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=900)


def coco_ap50(predictions, ann_file) -> float:
    """COCOeval's AP50 of dumped predictions, written here from the
    pycocotools API (the oracle of the run's test-part metrics)."""
    gt = COCO(ann_file)
    boxes = [[
        p['img_id'], x0, y0, x1 - x0, y1 - y0, score,
        gt.getCatIds()[label]
    ] for p in predictions for (x0, y0, x1, y1), score, label in zip(
        p['pred_instances']['bboxes'].tolist(), p['pred_instances']
        ['scores'].tolist(), p['pred_instances']['labels'].tolist())]
    evaluation = COCOeval(gt, gt.loadRes(np.array(boxes)), 'bbox')
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return evaluation.stats[1]


def test_both_comparisons_in_site_two_seeds_side_by_side(
        neon_trees, pretrained_root, tmp_path):
    root, _ = neon_trees
    work_dir = tmp_path / 'compare'
    work_dir.mkdir()
    os.symlink(root, work_dir / 'data')  # the tiles, already converted
    # DR: its scores start at the 0.5 prior, so even 2 iterations detect;
    # ce is the two-stage baseline, so its temperature-scaled twin runs.
    arguments = ('--iters', '2', '--seeds', '0', '1', '--losses', 'dr', 'ce')
    out = compare_losses(
        work_dir, *arguments, '--jobs', '2', pretrained_root=pretrained_root)
    assert '2 trainings of 2 iterations, 2 at a time' in out
    assert '=== [2/2] dr, seed' in out and '=== [2/2] ce, seed' in out
    assert '| dr | 2 |' in out and '| ce + T | 2 |' in out
    # mmengine's output went to each run's log, not to the console
    assert 'Iter(train)' not in out
    runs = work_dir / 'one-stage' / 'in_site'
    for seed in (0, 1):
        log = (runs / 'dr' / f'seed{seed}' / 'run.log').read_text()
        assert 'Iter(train) [2/2]' in log and 'Iter(test)' in log
    with open(work_dir / 'results_in_site.json') as f:
        summary = json.load(f)['comparisons']
    dr = summary['one-stage']['results']['dr']
    assert len(dr) == 2
    for picture in ('detections', 'reliability', 'score_histograms'):
        assert (runs / 'plots' / f'{picture}.png').stat().st_size > 0
    # The table's AP50 is of the validation strip's test part alone.
    test_ann_file = root / 'in_site' / 'annotations' / 'instances_test.json'
    test_ids = {
        i['id']
        for i in json.loads(test_ann_file.read_text())['images']
    }
    for seed, run in enumerate(dr):
        predictions = [
            p for p in mmengine.load(runs / 'dr' / f'seed{seed}' / 'val.pkl')
            if p['img_id'] in test_ids
        ]
        assert run['coco/bbox_mAP_50'] == pytest.approx(
            coco_ap50(predictions, str(test_ann_file)), abs=1e-3)
        assert 0 <= run['train_tiles/coco/bbox_mAP_50'] <= 1
        assert 0 <= run['calibration/d_ece_50'] <= 1
    # The temperature is fitted on every detection of the calibration part
    # and scored on the test part.
    calib_ann_file = root / 'in_site' / 'annotations' / 'instances_calib.json'
    calib_ids = {
        i['id']
        for i in json.loads(calib_ann_file.read_text())['images']
    }
    for seed in (0, 1):
        ce = work_dir / 'two-stage' / 'in_site' / 'ce' / f'seed{seed}'
        predictions = mmengine.load(ce / 'val.pkl')
        report = json.loads(
            (ce / 'calibration' / 'calibration.json').read_text())
        assert report['detections'] == sum(
            len(p['pred_instances']['scores']) for p in predictions
            if p['img_id'] in calib_ids)
        assert report['before']['coco/bbox_mAP_50'] == pytest.approx(
            coco_ap50([p for p in predictions if p['img_id'] in test_ids],
                      str(test_ann_file)),
            abs=1e-3)
    # The same command again trains nothing: each run is read from the
    # result.json it left, and the tables come out the same.
    again = compare_losses(
        work_dir, *arguments, '--no-plots', pretrained_root=pretrained_root)
    for name in ('dr', 'ce'):
        for seed in (0, 1):
            assert (f'{name}, seed {seed}:' in again
                    and 'finished earlier: result.json' in again)
    assert again.count('finished earlier') == 4
    tables = [line for line in out.splitlines() if line.startswith('| ')]
    assert tables == [
        line for line in again.splitlines() if line.startswith('| ')
    ]
    for seed in (0, 1):
        log = runs / 'dr' / f'seed{seed}' / 'run.log'
        assert log.read_text().count('Iter(train) [2/2]') == 1


def test_a_failed_training_names_itself_and_its_log(neon_trees,
                                                    pretrained_root, tmp_path):
    root, _ = neon_trees
    data = tmp_path / 'compare' / 'data'
    # the annotations without the tiles: the worker cannot load an image
    for split in ('.', 'in_site'):
        shutil.copytree(root / split / 'annotations',
                        data / split / 'annotations')
    proc = compare_losses(
        tmp_path / 'compare',
        '--iters',
        '1',
        '--seeds',
        '0',
        '1',
        '2',
        '--comparisons',
        'one-stage',
        '--losses',
        'dr',
        '--jobs',
        '1',
        '--no-plots',
        pretrained_root=pretrained_root,
        check=False)
    assert proc.returncode != 0
    runs = tmp_path / 'compare' / 'one-stage' / 'in_site' / 'dr'
    log = runs / 'seed0' / 'run.log'
    assert 'training dr with seed 0 failed' in proc.stderr
    assert f'its output is in {log}' in proc.stderr
    assert 'Traceback' in log.read_text()
    # the trainings still waiting never started
    assert not (runs / 'seed1').exists()


def test_the_schedule_follows_the_run_length(tmp_path):
    # The config warms up for 30 iterations and steps at 600 of 800.
    cfg = build_config(ONE_STAGE, 'dr', 0, 100, str(tmp_path))
    warmup, step = cfg.param_scheduler
    assert (warmup.type, warmup.end) == ('LinearLR', 30)
    assert (step.type, step.milestones) == ('MultiStepLR', [75])
    assert build_config(ONE_STAGE, 'dr', 0, 8,
                        str(tmp_path)).param_scheduler[0].end == 8
    assert cfg.model.bbox_head.type == 'DRRetinaHead'
    assert cfg.val_evaluator[-1].out_file_path == str(tmp_path / 'val.pkl')


def test_make_run_is_the_documented_subset_and_full_the_study():
    tool = load_tool('analysis', 'compare_losses.py')
    default, full = tool.parse_args([]), tool.parse_args(['--full'])
    comparisons = ('one-stage', 'two-stage')
    assert default.comparisons == list(comparisons)
    # make run: about 30 minutes on two cores
    assert [tool.seeds_of(default, c) for c in comparisons] == [[0, 1], [0]]
    # the study of docs/neon_trees: >= 5 seeds one-stage, >= 3 two-stage
    assert [tool.seeds_of(full, c) for c in comparisons] == [[0, 1, 2, 3, 4],
                                                             [0, 1, 2]]
    chosen = tool.parse_args(['--seeds', '3', '4'])
    assert [tool.seeds_of(chosen, c) for c in comparisons] == [[3, 4]] * 2
    # make run's one two-stage seed: its table says why there is no p
    run = dict({key: 0.5 for key, _ in TABLE_COLUMNS}, minutes=4.0)
    printed = tool.tables(TWO_STAGE, {'ce': [run], 'poly1_ce': [run]}, [0])
    assert '| ce | 1 | 50.0 |' in printed and 'One seed: no spread' in printed
    assert 'Welch' not in printed


def test_a_run_is_reused_only_under_the_same_settings(tmp_path, monkeypatch):
    directory = str(tmp_path / 'dr' / 'seed0')
    os.makedirs(directory)
    cfg = build_config(ONE_STAGE, 'dr', 0, 100, directory)
    fingerprint = run_fingerprint(cfg)
    assert finished_run(directory, fingerprint) is None  # nothing saved yet
    run = {'coco/bbox_mAP_50': 0.5}
    with open(osp.join(directory, RESULT_FILE), 'w') as f:
        json.dump(dict(fingerprint=fingerprint, run=run), f)
    assert finished_run(directory, fingerprint) == run
    # another length, another seed, another numeric path: not the same run
    others = [
        build_config(ONE_STAGE, 'dr', 0, 101, directory),
        build_config(ONE_STAGE, 'dr', 1, 100, directory)
    ]
    for other in others:
        assert finished_run(directory, run_fingerprint(other)) is None
    monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', 'AVX2')
    assert finished_run(directory, run_fingerprint(cfg)) is None


def test_a_schedule_without_a_rescaling_rule_is_an_error(tmp_path):
    config = tmp_path / 'cosine.py'
    config.write_text(f'_base_ = [{ONE_STAGE.config!r}]\n'
                      "param_scheduler = [dict(type='CosineAnnealingLR', "
                      'T_max=800, by_epoch=False)]\n')
    cosine = dataclasses.replace(ONE_STAGE, config=str(config))
    with pytest.raises(ValueError, match='CosineAnnealingLR'):
        build_config(cosine, 'focal', 0, 100, str(tmp_path))
