"""Fit a temperature to a detector's confidences on dumped validation
predictions, report D-ECE and AP before and after, and write a config that
applies it at test time.

    python tools/test.py CONFIG CHECKPOINT --out val_preds.pkl
    python tools/calibrate.py CONFIG val_preds.pkl [--work-dir DIR]
        [--objective d-ece|nll] [--fit-iou-thr 0.5] [--n-bins 10]
        [--ann-file FILE] [--cfg-options k=v ...]
    python tools/test.py DIR/<config>_temperature.py CHECKPOINT

Both fits are run and reported (grid search of T in 0.1..10 on D-ECE;
binary NLL by L-BFGS); ``--objective`` picks the one written. The map
``s -> sigmoid(logit(s) / T)`` keeps the order of detections, so AP must
not move: the tool checks that it did not.
"""
import argparse
import copy
import json
import os
import os.path as osp
from pprint import pformat
from typing import Optional

import mmengine
from mmdet.registry import DATASETS
from mmengine.config import Config, DictAction
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope

import mmdet_lossplug  # noqa: F401  (registers our modules)
from mmdet_lossplug.evaluation import (DetectionCalibrationMetric,
                                       fit_temperature_grid,
                                       fit_temperature_nll, temper_scores)
from mmdet_lossplug.evaluation.detection_calibration_metric import iou_key

# What may differ between before and after: float noise in COCOeval.
AP_TOLERANCE = 1e-9


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the config that made the predictions')
    parser.add_argument('predictions', help='tools/test.py --out pickle')
    parser.add_argument('--work-dir', help='where results and config go')
    parser.add_argument(
        '--objective',
        choices=['d-ece', 'nll'],
        default='d-ece',
        help='which fitted temperature to write')
    parser.add_argument('--fit-iou-thr', type=float, default=0.5)
    parser.add_argument(
        '--iou-thrs',
        type=float,
        nargs='+',
        default=[0.5, 0.75],
        help='IoU thresholds to report D-ECE at')
    parser.add_argument('--n-bins', type=int, default=10)
    parser.add_argument(
        '--ann-file',
        help='COCO ground truth of the predictions (default: the '
        "test_evaluator's CocoMetric ann_file)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def metric_cfgs(cfg) -> list:
    evaluator = cfg.test_evaluator
    metrics = evaluator if isinstance(evaluator,
                                      (list, tuple)) else [evaluator]
    return [copy.deepcopy(m) for m in metrics]


def ground_truth_file(cfg, ann_file):
    if ann_file is not None:
        return ann_file
    for metric in metric_cfgs(cfg):
        if metric.get('ann_file'):
            return metric['ann_file']
    raise ValueError('the dumped predictions carry no ground truth: pass '
                     '--ann-file or give the test_evaluator an ann_file')


def build_ap_evaluator(cfg, dataset_meta) -> Evaluator:
    """The config's other metrics (AP): calibration comes from judge()."""
    metrics = [
        m for m in metric_cfgs(cfg)
        if m['type'] not in ('DetectionCalibrationMetric', 'DumpDetResults',
                             'DumpResults')
    ]
    evaluator = Evaluator(metrics)
    evaluator.dataset_meta = dataset_meta
    return evaluator


def judge(predictions, args, ann_file, dataset_meta):
    """COCOeval's verdict on every detection at every reported IoU
    threshold (and LaECE's). The temperature keeps the order of scores, so
    the verdicts hold for the tempered scores too."""
    metric = DetectionCalibrationMetric(
        iou_thrs=tuple(args.iou_thrs), n_bins=args.n_bins, ann_file=ann_file)
    metric.dataset_meta = dataset_meta
    metric.process(None, predictions)
    return (metric, *metric.judge(metric.results))


def calibration_errors(judged, temperature: Optional[float],
                       out_dir: str) -> dict:
    """D-ECE family, LaECE and LRP of the judged detections, their scores
    tempered by ``temperature`` (``None``: as predicted); the diagrams go
    to ``out_dir``."""
    metric, scores, labels, verdicts = judged
    if temperature is not None:
        scores = temper_scores(scores, temperature)
    errors = metric.calibration_errors(scores, labels, verdicts)
    metric.out_dir = out_dir
    for index, thr in enumerate(metric.iou_thrs):
        conf, hits = metric.counted(scores, verdicts, index)
        if len(conf):
            metric.save_diagram(conf, hits, thr)
    return {f'{metric.prefix}/{name}': value for name, value in errors.items()}


def fit(judged, args) -> dict:
    """Both temperatures from the verdicts at ``--fit-iou-thr``."""
    metric, scores, _, verdicts = judged
    conf, hits = metric.counted(scores, verdicts,
                                args.iou_thrs.index(args.fit_iou_thr))
    if not len(conf):
        raise ValueError('no detections to fit a temperature on')
    t_grid, d_ece = fit_temperature_grid(conf, hits, args.n_bins)
    t_nll, nll = fit_temperature_nll(conf, hits)
    return {
        'd-ece': dict(temperature=t_grid, d_ece=d_ece),
        'nll': dict(temperature=t_nll, nll=nll),
        'detections': int(len(conf)),
        'precision': float(hits.mean()),
    }


def tempered(predictions, temperature: float):
    predictions = copy.deepcopy(predictions)
    for sample in predictions:
        pred = sample['pred_instances']
        pred['scores'] = temper_scores(pred['scores'], temperature)
    return predictions


def write_config(cfg, config: str, temperature: float, out_file: str):
    """A config that inherits ``config`` and adds the temperature hook to
    its own custom hooks (a list replaces its base's whole)."""
    hooks = [
        h.to_dict() if hasattr(h, 'to_dict') else dict(h)
        for h in cfg.get('custom_hooks', [])
        if h.get('type') != 'DetectionTemperatureHook'
    ]
    hooks.append(
        dict(type='DetectionTemperatureHook', temperature=temperature))
    with open(out_file, 'w') as f:
        f.write('# Written by tools/calibrate.py: scales every detection '
                'score at val/test time\n# by sigmoid(logit(s) / T).\n'
                f'_base_ = [{osp.abspath(config)!r}]\n'
                f'custom_hooks = {pformat(hooks)}\n')


def format_report(before: dict, after: dict, keys) -> str:
    lines = ['| metric | before | after |', '|---|---|---|']
    for key in keys:
        lines.append(f'| {key} | {100 * before[key]:.2f} | '
                     f'{100 * after[key]:.2f} |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.fit_iou_thr not in args.iou_thrs:
        args.iou_thrs.append(args.fit_iou_thr)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    work_dir = args.work_dir or osp.join(
        'work_dirs',
        osp.splitext(osp.basename(args.config))[0], 'calibration')
    os.makedirs(work_dir, exist_ok=True)

    predictions = mmengine.load(args.predictions)
    dataset_meta = DATASETS.build(cfg.test_dataloader.dataset).metainfo
    ann_file = ground_truth_file(cfg, args.ann_file)

    judged = judge(predictions, args, ann_file, dataset_meta)
    fits = fit(judged, args)
    temperature = fits[args.objective]['temperature']
    ap_evaluator = build_ap_evaluator(cfg, dataset_meta)
    before = dict(
        ap_evaluator.offline_evaluate(copy.deepcopy(predictions)),
        **calibration_errors(judged, None, osp.join(work_dir, 'before')))
    after = dict(
        ap_evaluator.offline_evaluate(tempered(predictions, temperature)),
        **calibration_errors(judged, temperature, osp.join(work_dir, 'after')))
    ap_keys = [k for k in before if '_mAP' in k]
    moved = {k: after[k] - before[k] for k in ap_keys}
    if any(abs(d) > AP_TOLERANCE for d in moved.values()):
        raise RuntimeError(f'AP moved under temperature scaling: {moved}')

    config_out = osp.join(
        work_dir,
        osp.splitext(osp.basename(args.config))[0] + '_temperature.py')
    write_config(cfg, args.config, temperature, config_out)
    calibration_keys = [
        f'calibration/{name}_{iou_key(t)}' for t in sorted(args.iou_thrs)
        for name in ('d_ece', 'adaptive_d_ece', 'd_mce')
    ] + ['calibration/laece', 'calibration/lrp']
    report = dict(
        fits,
        objective=args.objective,
        temperature=temperature,
        before=before,
        after=after,
        config=config_out)
    with open(osp.join(work_dir, 'calibration.json'), 'w') as f:
        json.dump(report, f, indent=2)
    print(f"T by D-ECE grid: {fits['d-ece']['temperature']:.1f}, by NLL "
          f"(L-BFGS): {fits['nll']['temperature']:.3f}; "
          f'writing T = {temperature:.3f} ({args.objective}), fitted on '
          f"{fits['detections']} detections at IoU {args.fit_iou_thr}\n"
          f'{format_report(before, after, ap_keys + calibration_keys)}\n'
          f'test-time config: {config_out}')
    return report


if __name__ == '__main__':
    main()
