"""Fit post-hoc calibrators to a detector's scores on dumped validation
predictions, report AP, D-ECE, LaECE and LRP before and after each, and
write a config that applies the chosen one at test time.

    python tools/test.py CONFIG CHECKPOINT --out val_preds.pkl
    python tools/calibrate.py CONFIG val_preds.pkl [--work-dir DIR]
        [--calibrator temperature|platt|isotonic] [--objective d-ece|nll]
        [--class-agnostic] [--target tp|iou] [--fit-iou-thr 0.5]
        [--iou-thrs 0.5 0.75] [--n-bins 10] [--ann-file FILE]
        [--held-out PREDICTIONS ANN_FILE] [--cfg-options k=v ...]
    python tools/test.py DIR/<config>_<calibrator>.py CHECKPOINT

All three calibrators (temperature, Platt, isotonic) are fitted and
reported; ``--calibrator`` picks the one whose config is written. With
``--held-out`` (predictions on other images and their ground truth) every
metric before and after is of those, so no calibrator is scored on what it
was fitted to. What is
fitted to what, and what is checked:
:mod:`mmdet_lossplug.apis.calibrate_predictions`.
"""
import argparse
import os.path as osp

import mmengine
from mmengine.config import DictAction

import mmdet_lossplug  # noqa: F401  (registers our modules)
from mmdet_lossplug.apis import (calibrate_predictions, format_report,
                                 reported_iou_thrs)
from mmdet_lossplug.calibration import CALIBRATORS, TEMPERATURE_OBJECTIVES


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
        choices=TEMPERATURE_OBJECTIVES,
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
    parser.add_argument(
        '--held-out',
        nargs=2,
        metavar=('PREDICTIONS', 'ANN_FILE'),
        help='score on these predictions of other images (and their COCO '
        'ground truth) instead of those fitted on')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def load_predictions(path: str) -> list:
    """The per-image predictions ``tools/test.py --out`` dumped."""
    predictions = mmengine.load(path)
    if not isinstance(predictions, list) or not predictions:
        raise ValueError(f'{path} holds no images: nothing to calibrate '
                         '(dump them with tools/test.py --out)')
    return predictions


def default_work_dir(config: str) -> str:
    return osp.join('work_dirs',
                    osp.splitext(osp.basename(config))[0], 'calibration')


def summary(report: dict, args) -> str:
    """The fitted temperatures, the before / after table and the config
    written."""
    return (f"T by D-ECE grid: {report['d-ece']['temperature']:.1f}, by NLL "
            f"(L-BFGS): {report['nll']['temperature']:.3f}; "
            f"T = {report['temperature']:.3f} ({args.objective}); fitted on "
            f"{report['detections']} detections at IoU {args.fit_iou_thr}\n" +
            format_report(report,
                          reported_iou_thrs(args.iou_thrs, args.fit_iou_thr)) +
            f'\nwriting the {args.calibrator} calibrator; test-time config: '
            f"{report['config']}")


def main(argv=None):
    args = parse_args(argv)
    report = calibrate_predictions(
        args.config,
        load_predictions(args.predictions),
        args.work_dir or default_work_dir(args.config),
        calibrator=args.calibrator,
        objective=args.objective,
        classwise=not args.class_agnostic,
        target=args.target,
        fit_iou_thr=args.fit_iou_thr,
        iou_thrs=args.iou_thrs,
        n_bins=args.n_bins,
        ann_file=args.ann_file,
        cfg_options=args.cfg_options,
        held_out=None if args.held_out is None else
        (load_predictions(args.held_out[0]), args.held_out[1]))
    print(summary(report, args))
    return report


if __name__ == '__main__':
    main()
