"""Fit post-hoc calibrators to a detector's dumped validation predictions,
evaluate AP, D-ECE, LaECE and LRP before and after each, and write a
config that applies the chosen one at test time (what
``tools/calibrate.py`` does).

The detections are judged by COCOeval (those on crowd regions or past
maxDets left out) and the calibrators fitted to them:

- temperature: one ``T`` for all classes, ``sigmoid(logit(s) / T)``, by
  grid search of ``T`` in 0.1..10 on D-ECE or by binary NLL (L-BFGS)
  against true / false positive at ``fit_iou_thr``; both are reported,
  ``objective`` picks the one used;
- platt: ``sigmoid(a logit(s) + b)``, ``a > 0``, by binary cross-entropy;
- isotonic: isotonic regression (scikit-learn).

Platt and isotonic are fitted per class (``classwise``), as in
fiveai/detection_calibration, against 1 / 0 for a true / false positive at
``fit_iou_thr`` (``target='tp'``, what D-ECE asks) or the IoU of a true
positive at LaECE's threshold (``target='iou'``, what LaECE asks).
Temperature and Platt keep each class's order of detections, so AP cannot
move: that is checked. Isotonic regression ties scores, so AP can move:
the change is reported.
"""
import copy
import json
import os
import os.path as osp
from pprint import pformat
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from mmdet.registry import DATASETS
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope

from ..calibration import (CALIBRATORS, IsotonicCalibrator, PlattCalibrator,
                           ScoreCalibrator, TemperatureCalibrator,
                           fit_temperature_grid, fit_temperature_nll)
from ..evaluation import (LAECE_IOU_THR, DetectionCalibrationMetric,
                          JudgedDetections, detection_calibration_errors,
                          detection_reliability_diagrams, iou_key,
                          judge_predictions, load_coco,
                          log_detection_calibration_errors, write_diagrams)

# What may differ between before and after: float noise in COCOeval.
AP_TOLERANCE = 1e-9
# The calibrators that keep each class's order of scores, and so AP.
ORDER_KEEPING = ('temperature', 'platt')
# Hooks a written config replaces: the calibration it adds is the only one.
CALIBRATION_HOOKS = ('DetectionScoreCalibrationHook', )


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """``config`` with ``cfg_options`` merged, its default scope set."""
    cfg = Config.fromfile(config)
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg


def metric_cfgs(cfg: Config) -> list:
    evaluator = cfg.test_evaluator
    metrics = evaluator if isinstance(evaluator,
                                      (list, tuple)) else [evaluator]
    return [copy.deepcopy(m) for m in metrics]


def ground_truth_file(cfg: Config, ann_file: Optional[str] = None) -> str:
    """``ann_file``, else the first ``ann_file`` of the test evaluator."""
    if ann_file is not None:
        return ann_file
    for metric in metric_cfgs(cfg):
        if metric.get('ann_file'):
            return metric['ann_file']
    raise ValueError('the dumped predictions carry no ground truth: pass '
                     '--ann-file or give the test_evaluator an ann_file')


def build_ap_evaluator(cfg: Config, dataset_meta: dict,
                       ann_file: str) -> Evaluator:
    """The config's other metrics (AP), reading their ground truth from
    ``ann_file``: calibration errors come from
    ``detection_calibration_errors``."""
    metrics = [
        dict(m, ann_file=ann_file) if m.get('ann_file') else m
        for m in metric_cfgs(cfg)
        if m['type'] not in ('DetectionCalibrationMetric', 'DumpDetResults',
                             'DumpResults')
    ]
    evaluator = Evaluator(metrics)
    evaluator.dataset_meta = dataset_meta
    return evaluator


def fit_data(judged: JudgedDetections, iou_thr: float,
             target: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, labels and targets of the detections counted at ``iou_thr``:
    1 / 0 for a true / false positive (``'tp'``) or a true positive's IoU
    (``'iou'``)."""
    counted = judged.counted(iou_thr)
    if not counted.any():
        raise ValueError('no judged detections to fit a calibrator on')
    targets = judged.ious(iou_thr) if target == 'iou' else (
        judged.hits(iou_thr))
    return (judged.scores[counted], judged.labels[counted],
            targets[counted].astype(float))


def temperature_fits(judged: JudgedDetections, iou_thr: float,
                     n_bins: int) -> dict:
    """The temperature by each objective and what it reaches, with the
    detections and precision it is fitted on, for the report."""
    conf, hits = judged.confidences_and_hits(iou_thr)
    t_grid, d_ece = fit_temperature_grid(conf, hits, n_bins)
    t_nll, nll = fit_temperature_nll(conf, hits)
    return {
        'd-ece': dict(temperature=t_grid, d_ece=d_ece),
        'nll': dict(temperature=t_nll, nll=nll),
        'detections': int(len(conf)),
        'precision': float(hits.mean()),
    }


def fit_calibrators(judged: JudgedDetections, num_classes: int,
                    fit_iou_thr: float, objective: str, n_bins: int,
                    classwise: bool,
                    target: str) -> Dict[str, ScoreCalibrator]:
    """Every calibrator: one temperature against true / false positive at
    ``fit_iou_thr``; Platt and isotonic against ``target``."""
    tp_data = fit_data(judged, fit_iou_thr, 'tp')
    target_data = fit_data(judged,
                           LAECE_IOU_THR if target == 'iou' else fit_iou_thr,
                           target)
    return dict(
        temperature=TemperatureCalibrator.fit(
            *tp_data,
            num_classes,
            classwise=False,
            objective=objective,
            n_bins=n_bins),
        platt=PlattCalibrator.fit(*target_data, num_classes, classwise),
        isotonic=IsotonicCalibrator.fit(*target_data, num_classes, classwise))


def calibrated(predictions: list, calibrator: ScoreCalibrator) -> list:
    """A copy of ``predictions`` with every score mapped."""
    predictions = copy.deepcopy(predictions)
    for sample in predictions:
        pred = sample['pred_instances']
        pred['scores'] = calibrator.apply(pred['scores'], pred['labels'])
    return predictions


def write_config(cfg: Config, config: str, calibrator: ScoreCalibrator,
                 out_file: str) -> None:
    """A config that inherits ``config`` and adds the calibration hook to
    its own custom hooks (a list replaces its base's whole)."""
    hooks = [
        h.to_dict() if hasattr(h, 'to_dict') else dict(h)
        for h in cfg.get('custom_hooks', [])
        if h.get('type') not in CALIBRATION_HOOKS
    ]
    hooks.append(
        dict(
            type='DetectionScoreCalibrationHook',
            calibrator=calibrator.to_dict()))
    with open(out_file, 'w') as f:
        f.write('# Written by tools/calibrate.py: maps every detection '
                f'score at val/test time\n# ({calibrator.kind}).\n'
                f'_base_ = [{osp.abspath(config)!r}]\n'
                f'custom_hooks = {pformat(hooks)}\n')


def reported_iou_thrs(iou_thrs: Sequence[float], fit_iou_thr: float) -> list:
    """D-ECE's IoU thresholds: ``iou_thrs`` and the one fitted at."""
    return list(iou_thrs) + ([] if fit_iou_thr in iou_thrs else [fit_iou_thr])


def format_report(report: dict, iou_thrs: Sequence[float]) -> str:
    """A markdown table in percent of AP and the calibration errors
    (D-ECE's at ``iou_thrs``) before and after each calibrator."""
    before = report['before']
    afters = {kind: c['after'] for kind, c in report['calibrators'].items()}
    prefix = DetectionCalibrationMetric.default_prefix
    keys = [k for k in before if '_mAP' in k] + [
        f'{prefix}/{name}_{iou_key(t)}' for t in sorted(iou_thrs)
        for name in ('d_ece', 'adaptive_d_ece', 'd_mce')
    ] + [f'{prefix}/laece', f'{prefix}/lrp']
    lines = [
        '| metric | before | ' + ' | '.join(afters) + ' |',
        '|---|---|' + '---|' * len(afters)
    ]
    for key in keys:
        lines.append(f'| {key} | {100 * before[key]:.2f} | ' +
                     ' | '.join(f'{100 * after[key]:.2f}'
                                for after in afters.values()) + ' |')
    return '\n'.join(lines)


class PredictionEvaluation:
    """AP (the config's metrics) and the calibration errors of a set of
    predictions, judged against one ground truth (``ann_file``: the AP
    metrics read it too, whatever file the config names)."""

    def __init__(self,
                 cfg: Config,
                 ann_file: str,
                 iou_thrs: Sequence[float] = (0.5, 0.75),
                 n_bins: int = 10) -> None:
        self.dataset_meta = DATASETS.build(
            cfg.test_dataloader.dataset).metainfo
        self.ap_evaluator = build_ap_evaluator(cfg, self.dataset_meta,
                                               ann_file)
        self.coco_gt = load_coco(ann_file)
        self.iou_thrs = tuple(iou_thrs)
        self.n_bins = n_bins

    def judge(self, predictions: list) -> JudgedDetections:
        """COCOeval's verdicts at every reported IoU and LaECE's."""
        return judge_predictions(predictions,
                                 self.iou_thrs + (LAECE_IOU_THR, ),
                                 self.dataset_meta['classes'], self.coco_gt)

    def __call__(self, predictions: list, judged: JudgedDetections,
                 out_dir: str) -> dict:
        """AP and calibration errors by metric name; the reliability
        diagrams go to ``out_dir``."""
        ap = self.ap_evaluator.offline_evaluate(copy.deepcopy(predictions))
        errors = detection_calibration_errors(judged, self.iou_thrs,
                                              self.n_bins)
        log_detection_calibration_errors(judged, errors, self.iou_thrs)
        write_diagrams(
            detection_reliability_diagrams(judged, self.iou_thrs, self.n_bins),
            out_dir)
        prefix = DetectionCalibrationMetric.default_prefix
        return dict(ap, **{
            f'{prefix}/{name}': v
            for name, v in errors.items()
        })


def evaluate_calibrators(evaluation: PredictionEvaluation, predictions: list,
                         judged: JudgedDetections,
                         calibrators: Dict[str, ScoreCalibrator],
                         work_dir: str) -> Tuple[dict, Dict[str, dict]]:
    """The metrics of ``predictions`` before and after each calibrator
    (diagrams in ``work_dir/before`` and ``work_dir/<kind>``)."""
    before = evaluation(predictions, judged, osp.join(work_dir, 'before'))
    afters = {}
    for kind, fitted in calibrators.items():
        # Judged afresh: an isotonic map ties scores, and COCO breaks ties
        # by input order, so the verdicts may differ from the uncalibrated.
        preds = calibrated(predictions, fitted)
        afters[kind] = evaluation(preds, evaluation.judge(preds),
                                  osp.join(work_dir, kind))
    return before, afters


def ap_changes(before: dict, afters: Dict[str, dict]) -> Dict[str, dict]:
    """Each calibrator's change of every AP; a ``RuntimeError`` if AP moved
    under one that keeps the order of scores (``ORDER_KEEPING``)."""
    ap_keys = [k for k in before if '_mAP' in k]
    changes = {
        kind: {
            k: after[k] - before[k]
            for k in ap_keys
        }
        for kind, after in afters.items()
    }
    for kind in ORDER_KEEPING:
        if any(abs(d) > AP_TOLERANCE for d in changes[kind].values()):
            raise RuntimeError(f'AP moved under {kind} scaling, which keeps '
                               f'the order of scores: {changes[kind]}')
    return changes


def calibration_report(fits: dict, calibrators: Dict[str, ScoreCalibrator],
                       calibrator: str, objective: str, before: dict,
                       afters: Dict[str, dict], config_out: str) -> dict:
    """What ``calibration.json`` holds (see :func:`calibrate_predictions`).
    """
    ap_change = ap_changes(before, afters)
    return dict(
        fits,
        objective=objective,
        temperature=calibrators['temperature'].params[0]['temperature'],
        calibrator=calibrator,
        before=before,
        after=afters[calibrator],
        calibrators={
            kind:
            dict(
                fitted.to_dict(),
                after=afters[kind],
                ap_change=ap_change[kind])
            for kind, fitted in calibrators.items()
        },
        config=config_out)


def write_report(report: dict, work_dir: str) -> None:
    """``work_dir/calibration.json``."""
    with open(osp.join(work_dir, 'calibration.json'), 'w') as f:
        json.dump(report, f, indent=2)


def calibrate_predictions(config: str,
                          predictions: list,
                          work_dir: str,
                          calibrator: str = 'temperature',
                          objective: str = 'd-ece',
                          classwise: bool = True,
                          target: str = 'tp',
                          fit_iou_thr: float = 0.5,
                          iou_thrs: Sequence[float] = (0.5, 0.75),
                          n_bins: int = 10,
                          ann_file: Optional[str] = None,
                          cfg_options: Optional[dict] = None,
                          held_out: Optional[Tuple[list, str]] = None) -> dict:
    """Fit every calibrator to ``predictions`` of ``config``'s detector,
    evaluate before and after each, write the config applying
    ``calibrator`` and ``calibration.json`` to ``work_dir``.

    With ``held_out = (predictions, ann_file)`` of other images, the
    calibrators are fitted on ``predictions`` and every metric before and
    after is of the held-out ones: no calibrator is scored on the data it
    was fitted to.

    Returns:
        dict: The report (``calibration.json``; ``format_report`` makes a
        table of it): the fits,
        ``before``, ``after`` (``calibrator``'s) and every calibrator's
        parameters, metrics and change of AP, and the ``config`` written.
    """
    if calibrator not in CALIBRATORS:
        raise ValueError(f'calibrator must be one of {sorted(CALIBRATORS)}, '
                         f'got {calibrator!r}')
    iou_thrs = reported_iou_thrs(iou_thrs, fit_iou_thr)
    cfg = load_config(config, cfg_options)
    os.makedirs(work_dir, exist_ok=True)
    fitting = PredictionEvaluation(cfg, ground_truth_file(cfg, ann_file),
                                   iou_thrs, n_bins)
    judged = fitting.judge(predictions)
    calibrators = fit_calibrators(judged, len(fitting.dataset_meta['classes']),
                                  fit_iou_thr, objective, n_bins, classwise,
                                  target)
    fits = temperature_fits(judged, fit_iou_thr, n_bins)
    # Scored on the fitted predictions, or on the held-out ones.
    if held_out is None:
        evaluation = fitting
    else:
        predictions, held_out_ann_file = held_out
        evaluation = PredictionEvaluation(cfg, held_out_ann_file, iou_thrs,
                                          n_bins)
        judged = evaluation.judge(predictions)
    before, afters = evaluate_calibrators(evaluation, predictions, judged,
                                          calibrators, work_dir)
    config_out = osp.join(
        work_dir, f'{osp.splitext(osp.basename(config))[0]}_{calibrator}.py')
    report = calibration_report(fits, calibrators, calibrator, objective,
                                before, afters, config_out)
    write_config(cfg, config, calibrators[calibrator], config_out)
    write_report(report, work_dir)
    return report
