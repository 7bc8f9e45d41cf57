"""tools/calibrate.py end to end: train, dump validation predictions with
tools/test.py --out (D-ECE computed beside COCO AP), fit temperature, Platt
and isotonic calibrators, then test again with the configs the tool wrote
(temperature, class-wise Platt): AP unchanged, D-ECE as the tool
predicted. A pickle of zero images is a clear error."""
import json
import os
import pickle
import re
import subprocess
import sys

import pytest

from ..helpers import ROOT, SHAPES_CONFIG, run_tool

pytestmark = pytest.mark.integration  # runs the tools / trains

# 4 iterations leave every score near the 0.01 prior: keep them all.
KEEP_ALL = 'model.test_cfg.score_thr=0.0'


def _metrics(log: str) -> dict:
    line = re.findall(r'Iter\(test\) \[\d+/\d+\](.*)', log)[-1]
    return {k: float(v) for k, v in re.findall(r'(\S+): (-?[\d.]+)', line)}


def _tested(config, checkpoint, work_dir, env, *args) -> dict:
    """The metrics tools/test.py prints for ``config``, every score kept."""
    return _metrics(
        run_tool(
            'tools/test.py',
            config,
            checkpoint,
            '--work-dir',
            str(work_dir),
            *args,
            '--cfg-options',
            KEEP_ALL,
            env=env))


def test_fit_write_and_apply_a_temperature(tmp_path, shapes_root):
    env = dict(os.environ, SHAPES_ROOT=shapes_root)
    run_tool(
        'tools/train.py',
        SHAPES_CONFIG,
        '--work-dir',
        str(tmp_path / 'train'),
        '--cfg-options',
        # seeded: the fitted temperature below must not come out as 1
        'randomness.seed=0',
        'train_cfg.max_iters=4',
        'train_cfg.val_interval=100',
        'default_hooks.checkpoint.interval=4',
        'train_dataloader.batch_size=4',
        env=env)
    checkpoint = str(tmp_path / 'train' / 'iter_4.pth')
    preds = str(tmp_path / 'val.pkl')
    before = _tested(SHAPES_CONFIG, checkpoint, tmp_path / 'test', env,
                     '--out', preds)
    assert 0 < before['calibration/d_ece_50'] <= 1

    out = tmp_path / 'calibration'
    printed = run_tool(
        'tools/calibrate.py',
        SHAPES_CONFIG,
        preds,
        '--work-dir',
        str(out),
        env=env)
    report = json.loads((out / 'calibration.json').read_text())
    assert report['objective'] == 'd-ece'
    temperature = report['temperature']
    assert temperature == report['d-ece']['temperature']
    assert 0 < temperature <= 10 and round(temperature, 1) == temperature
    assert report['nll']['temperature'] > 0
    assert f'T = {temperature:.3f} (d-ece)' in printed
    # The offline "before" is what tools/test.py computed online.
    for key in ('coco/bbox_mAP', 'calibration/d_ece_50',
                'calibration/d_ece_75'):
        assert abs(report['before'][key] - before[key]) < 1e-4, key
    assert report['after']['coco/bbox_mAP'] == report['before'][
        'coco/bbox_mAP']
    assert temperature != 1.0
    assert (report['after']['calibration/d_ece_50']
            < report['before']['calibration/d_ece_50'])
    assert (out / 'temperature' / 'reliability_iou50.png').is_file()
    # Platt keeps each class's order (AP equal); isotonic may move AP, and
    # the tool reports by how much.
    calibrators = report['calibrators']
    assert set(calibrators) == {'temperature', 'platt', 'isotonic'}
    assert all(d == 0 for d in calibrators['platt']['ap_change'].values())
    assert 'coco/bbox_mAP' in calibrators['isotonic']['ap_change']
    assert calibrators['platt']['classwise']
    for kind in ('platt', 'isotonic'):
        assert (calibrators[kind]['after']['calibration/d_ece_50']
                < report['before']['calibration/d_ece_50']), kind

    tempered = _tested(report['config'], checkpoint,
                       tmp_path / 'test_tempered', env)
    assert tempered['coco/bbox_mAP'] == before['coco/bbox_mAP']
    for key in ('calibration/d_ece_50', 'calibration/adaptive_d_ece_50',
                'calibration/d_ece_75', 'calibration/laece'):
        assert abs(tempered[key] - report['after'][key]) < 1e-4, key

    # The class-wise Platt config, written by a second run, through the
    # DetectionScoreCalibrationHook.
    run_tool(
        'tools/calibrate.py',
        SHAPES_CONFIG,
        preds,
        '--work-dir',
        str(tmp_path / 'platt'),
        '--calibrator',
        'platt',
        env=env)
    platt_report = json.loads(
        (tmp_path / 'platt' / 'calibration.json').read_text())
    assert platt_report['config'].endswith('_platt.py')
    platted = _tested(platt_report['config'], checkpoint,
                      tmp_path / 'test_platt', env)
    assert platted['coco/bbox_mAP'] == before['coco/bbox_mAP']
    for key in ('calibration/d_ece_50', 'calibration/laece'):
        assert abs(platted[key] - platt_report['after'][key]) < 1e-4, key


def test_zero_images_is_a_clear_error(tmp_path):
    empty = tmp_path / 'empty.pkl'
    empty.write_bytes(pickle.dumps([]))
    proc = subprocess.run(
        [sys.executable, 'tools/calibrate.py', SHAPES_CONFIG,
         str(empty)],
        cwd=ROOT,
        capture_output=True,
        text=True)
    assert proc.returncode != 0
    assert 'empty.pkl holds no images' in proc.stderr
