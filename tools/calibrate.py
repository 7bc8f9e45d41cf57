"""Fit post-hoc calibrators to a detector's scores on dumped validation
predictions, report AP, D-ECE, LaECE and LRP before and after each, and
write a config that applies the chosen one at test time.

    python tools/test.py CONFIG CHECKPOINT --out val_preds.pkl
    python tools/calibrate.py CONFIG val_preds.pkl [--work-dir DIR]
        [--calibrator temperature|platt|isotonic] [--objective d-ece|nll]
        [--class-agnostic] [--target tp|iou] [--fit-iou-thr 0.5]
        [--iou-thrs 0.5 0.75] [--n-bins 10] [--ann-file FILE]
        [--cfg-options k=v ...]
    python tools/test.py DIR/<config>_<calibrator>.py CHECKPOINT

The detections are judged by COCOeval (those on crowd regions or past
maxDets left out) and the calibrators fitted to them:

- temperature: one ``T`` for all classes, ``sigmoid(logit(s) / T)``, by
  grid search of ``T`` in 0.1..10 on D-ECE and by binary NLL (L-BFGS)
  against true / false positive at ``--fit-iou-thr``; ``--objective``
  picks the one written;
- platt: ``sigmoid(a logit(s) + b)``, ``a > 0``, by binary cross-entropy;
- isotonic: isotonic regression (scikit-learn).

Platt and isotonic are fitted per class (``--class-agnostic``: once), as in
fiveai/detection_calibration, against 1 / 0 for a true / false positive
at ``--fit-iou-thr`` (``--target tp``, what D-ECE asks) or the IoU of a
true positive at LaECE's threshold (``--target iou``, what LaECE asks).
All three are fitted and reported; ``--calibrator`` picks the one whose
config is written. Temperature and Platt keep each class's order of
detections, so AP cannot move: the tool checks that it did not. Isotonic
regression ties scores, so AP can move: the change is reported.
"""
import argparse
import copy
import json
import os
import os.path as osp
from pprint import pformat

import mmengine
from mmdet.registry import DATASETS
from mmengine.config import Config, DictAction
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope

import mmdet_lossplug  # noqa: F401  (registers our modules)
from mmdet_lossplug.evaluation import (DetectionCalibrationMetric,
                                       fit_temperature_grid,
                                       fit_temperature_nll)
from mmdet_lossplug.evaluation.coco_matching import IGNORED, TRUE_POSITIVE
from mmdet_lossplug.evaluation.detection_calibration_metric import iou_key
from mmdet_lossplug.evaluation.posthoc_calibration import (
    CALIBRATORS, IsotonicCalibrator, PlattCalibrator, ScoreCalibrator,
    TemperatureCalibrator)

# What may differ between before and after: float noise in COCOeval.
AP_TOLERANCE = 1e-9


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the config that made the predictions')
    parser.add_argument('predictions', help='tools/test.py --out pickle')
    parser.add_argument('--work-dir', help='where results and config go')
    parser.add_argument(
        '--calibrator',
        choices=list(CALIBRATORS),
        default='temperature',
        help='which fitted calibrator to write a config for')
    parser.add_argument(
        '--objective',
        choices=['d-ece', 'nll'],
        default='d-ece',
        help='which fitted temperature to use')
    parser.add_argument(
        '--class-agnostic',
        action='store_true',
        help='fit Platt and isotonic once for all classes')
    parser.add_argument(
        '--target',
        choices=['tp', 'iou'],
        default='tp',
        help='what Platt and isotonic fit: true positive (1 / 0) at '
        "--fit-iou-thr, or a true positive's IoU at LaECE's threshold")
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
    threshold and LaECE's: ``(metric, scores, labels, verdicts)``."""
    metric = DetectionCalibrationMetric(
        iou_thrs=tuple(args.iou_thrs), n_bins=args.n_bins, ann_file=ann_file)
    metric.dataset_meta = dataset_meta
    metric.process(None, predictions)
    return (metric, *metric.judge(metric.results))


def calibration_errors(judged, out_dir: str) -> dict:
    """D-ECE family, LaECE and LRP of judged detections (``judge``'s
    output); the diagrams go to ``out_dir``."""
    metric, scores, labels, verdicts = judged
    errors = metric.calibration_errors(scores, labels, verdicts)
    metric.out_dir = out_dir
    for index, thr in enumerate(metric.iou_thrs):
        conf, hits = metric.counted(scores, verdicts, index)
        if len(conf):
            metric.save_diagram(conf, hits, thr)
    return {f'{metric.prefix}/{name}': value for name, value in errors.items()}


def fit(judged, args, num_classes: int) -> dict:
    """Every calibrator, fitted to the judged detections."""
    metric, scores, labels, verdicts = judged
    index = args.iou_thrs.index(args.fit_iou_thr)
    conf, hits = metric.counted(scores, verdicts, index)
    if not len(conf):
        raise ValueError('no judged detections to fit a calibrator on')
    t_grid, d_ece = fit_temperature_grid(conf, hits, args.n_bins)
    t_nll, nll = fit_temperature_nll(conf, hits)
    temperature = dict(
        d_ece=t_grid, nll=t_nll)[args.objective.replace('-', '_')]
    if args.target == 'iou':
        index = -1  # LaECE's threshold, after the reported ones
    counted = verdicts.outcomes[index] != IGNORED
    targets = verdicts.ious[index] if args.target == 'iou' else (
        verdicts.outcomes[index] == TRUE_POSITIVE)
    fit_args = (scores[counted], labels[counted],
                targets[counted].astype(float), num_classes,
                not args.class_agnostic)
    calibrators = dict(
        temperature=TemperatureCalibrator([dict(temperature=temperature)],
                                          classwise=False),
        platt=PlattCalibrator.fit(*fit_args),
        isotonic=IsotonicCalibrator.fit(*fit_args))
    report = {
        'd-ece': dict(temperature=t_grid, d_ece=d_ece),
        'nll': dict(temperature=t_nll, nll=nll),
        'detections': int(len(conf)),
        'precision': float(hits.mean()),
    }
    return report, calibrators


def calibrated(predictions, calibrator: ScoreCalibrator):
    predictions = copy.deepcopy(predictions)
    for sample in predictions:
        pred = sample['pred_instances']
        pred['scores'] = calibrator(pred['scores'], pred['labels'])
    return predictions


def write_config(cfg, config: str, calibrator: ScoreCalibrator, out_file: str):
    """A config that inherits ``config`` and adds the calibration hook to
    its own custom hooks (a list replaces its base's whole)."""
    hooks = [
        h.to_dict() if hasattr(h, 'to_dict') else dict(h)
        for h in cfg.get('custom_hooks', [])
        if h.get('type') not in ('DetectionTemperatureHook',
                                 'DetectionScoreCalibrationHook')
    ]
    if isinstance(calibrator, TemperatureCalibrator):
        hooks.append(
            dict(
                type='DetectionTemperatureHook',
                temperature=calibrator.params[0]['temperature']))
    else:
        hooks.append(
            dict(
                type='DetectionScoreCalibrationHook',
                calibrator=calibrator.to_dict()))
    with open(out_file, 'w') as f:
        f.write('# Written by tools/calibrate.py: maps every detection '
                f'score at val/test time\n# ({calibrator.kind}).\n'
                f'_base_ = [{osp.abspath(config)!r}]\n'
                f'custom_hooks = {pformat(hooks)}\n')


def format_report(before: dict, afters: dict, keys) -> str:
    lines = [
        '| metric | before | ' + ' | '.join(afters) + ' |',
        '|---|---|' + '---|' * len(afters)
    ]
    for key in keys:
        lines.append(f'| {key} | {100 * before[key]:.2f} | ' +
                     ' | '.join(f'{100 * after[key]:.2f}'
                                for after in afters.values()) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    predictions = mmengine.load(args.predictions)
    if not isinstance(predictions, list) or not predictions:
        raise ValueError(f'{args.predictions} holds no images: nothing to '
                         'calibrate (dump them with tools/test.py --out)')
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

    dataset_meta = DATASETS.build(cfg.test_dataloader.dataset).metainfo
    ann_file = ground_truth_file(cfg, args.ann_file)
    judged = judge(predictions, args, ann_file, dataset_meta)
    fits, calibrators = fit(judged, args, len(dataset_meta['classes']))
    ap_evaluator = build_ap_evaluator(cfg, dataset_meta)

    def evaluate(preds, judged, out_dir):
        return dict(
            ap_evaluator.offline_evaluate(copy.deepcopy(preds)),
            **calibration_errors(judged, osp.join(work_dir, out_dir)))

    before = evaluate(predictions, judged, 'before')
    afters = {}
    for kind, calibrator in calibrators.items():
        # Judged afresh: an isotonic map ties scores, and COCO breaks ties
        # by input order, so the verdicts may differ from the uncalibrated.
        preds = calibrated(predictions, calibrator)
        afters[kind] = evaluate(preds,
                                judge(preds, args, ann_file, dataset_meta),
                                kind)
    ap_keys = [k for k in before if '_mAP' in k]
    ap_change = {
        kind: {
            k: after[k] - before[k]
            for k in ap_keys
        }
        for kind, after in afters.items()
    }
    for kind in ('temperature', 'platt'):  # monotone per class
        if any(abs(d) > AP_TOLERANCE for d in ap_change[kind].values()):
            raise RuntimeError(f'AP moved under {kind} scaling, which keeps '
                               f'the order of scores: {ap_change[kind]}')

    chosen = calibrators[args.calibrator]
    config_out = osp.join(
        work_dir,
        f'{osp.splitext(osp.basename(args.config))[0]}_{chosen.kind}.py')
    write_config(cfg, args.config, chosen, config_out)
    calibration_keys = [
        f'calibration/{name}_{iou_key(t)}' for t in sorted(args.iou_thrs)
        for name in ('d_ece', 'adaptive_d_ece', 'd_mce')
    ] + ['calibration/laece', 'calibration/lrp']
    report = dict(
        fits,
        objective=args.objective,
        temperature=calibrators['temperature'].params[0]['temperature'],
        calibrator=args.calibrator,
        before=before,
        after=afters[args.calibrator],
        calibrators={
            kind:
            dict(
                calibrator.to_dict(),
                after=afters[kind],
                ap_change=ap_change[kind])
            for kind, calibrator in calibrators.items()
        },
        config=config_out)
    with open(osp.join(work_dir, 'calibration.json'), 'w') as f:
        json.dump(report, f, indent=2)
    print(f"T by D-ECE grid: {fits['d-ece']['temperature']:.1f}, by NLL "
          f"(L-BFGS): {fits['nll']['temperature']:.3f}; "
          f"T = {report['temperature']:.3f} ({args.objective}); fitted on "
          f"{fits['detections']} detections at IoU {args.fit_iou_thr}\n"
          f'{format_report(before, afters, ap_keys + calibration_keys)}\n'
          f'writing the {args.calibrator} calibrator; test-time config: '
          f'{config_out}')
    return report


if __name__ == '__main__':
    main()
