"""tools/calibrate.py end to end: train, dump validation predictions with
tools/test.py --out (D-ECE computed beside COCO AP), fit a temperature,
then test again with the config the tool wrote: AP unchanged, D-ECE as the
tool predicted."""
import json
import os
import re

from ..conftest import SHAPES_CONFIG, run_tool

# 4 iterations leave every score near the 0.01 prior: keep them all.
KEEP_ALL = 'model.test_cfg.score_thr=0.0'


def _metrics(log: str) -> dict:
    line = re.findall(r'Iter\(test\) \[\d+/\d+\](.*)', log)[-1]
    return {k: float(v) for k, v in re.findall(r'(\S+): (-?[\d.]+)', line)}


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
    before = _metrics(
        run_tool(
            'tools/test.py',
            SHAPES_CONFIG,
            checkpoint,
            '--work-dir',
            str(tmp_path / 'test'),
            '--out',
            preds,
            '--cfg-options',
            KEEP_ALL,
            env=env))
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
    assert f'writing T = {temperature:.3f}' in printed
    # The offline "before" is what tools/test.py computed online.
    for key in ('coco/bbox_mAP', 'calibration/d_ece_50',
                'calibration/d_ece_75'):
        assert abs(report['before'][key] - before[key]) < 1e-4, key
    assert report['after']['coco/bbox_mAP'] == report['before'][
        'coco/bbox_mAP']
    assert temperature != 1.0
    assert (report['after']['calibration/d_ece_50']
            < report['before']['calibration/d_ece_50'])
    assert (out / 'after' / 'reliability_iou50.png').is_file()

    tempered = _metrics(
        run_tool(
            'tools/test.py',
            report['config'],
            checkpoint,
            '--work-dir',
            str(tmp_path / 'test_tempered'),
            '--cfg-options',
            KEEP_ALL,
            env=env))
    assert tempered['coco/bbox_mAP'] == before['coco/bbox_mAP']
    for key in ('calibration/d_ece_50', 'calibration/adaptive_d_ece_50',
                'calibration/d_ece_75'):
        assert abs(tempered[key] - report['after'][key]) < 1e-4, key
