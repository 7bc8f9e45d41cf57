"""One (row, seed) run of a comparison, in its worker: the config, the
training, the validation and training-tile metrics, and, for the
baseline, the same predictions after temperature scaling.

Where the validation tiles come in a calibration and a test part (the
in-site split), every reported metric is of the test part, and the
temperature is fitted on the calibration part.

A finished run leaves ``result.json`` beside its checkpoint; the same run
asked for again (same config, same numeric settings) is read from it, so
that a study too long for one sitting is done in pieces: rerunning the
command trains only what is missing."""
import copy
import hashlib
import importlib.util
import json
import os
import os.path as osp
import time
from typing import Optional, Tuple

import mmengine
import torch
from mmengine.config import Config
from mmengine.runner import Runner, set_random_seed

from ..apis import PredictionEvaluation, calibrate_predictions
from ..calibration import temper_scores
from .data import CALIBRATION_PART, TEST_PART, annotation_file
from .per_class import per_class_metrics
from .rows import Comparison
from .tables import COLUMNS, FIT_COLUMNS, FIT_PREFIX, reported

# The learning-rate schedule, rescaled to the run's length: warm-up ends by
# the last iteration, the step comes at three quarters of it.
WARMUP, STEP = 'LinearLR', 'MultiStepLR'

RESULT_FILE = 'result.json'
# Settings outside the config that change a run's bits: the instruction
# sets oneDNN, MKL and ATen's own kernels may use (set to AVX2, they give
# the numbers of a machine without AVX-512: docs/neon_trees).
NUMERIC_ENV = ('ONEDNN_MAX_CPU_ISA', 'MKL_ENABLE_INSTRUCTIONS',
               'ATEN_CPU_CAPABILITY')


def run_dir(work_dir: str, name: str, seed: int) -> str:
    """Where a run's checkpoint, predictions and ``run.log`` go."""
    return osp.join(work_dir, name, f'seed{seed}')


def _rescale_schedule(cfg: Config, iters: int) -> None:
    for scheduler in cfg.param_scheduler:
        if scheduler.type == WARMUP:
            scheduler.end = min(scheduler.end, iters)
        elif scheduler.type == STEP:
            scheduler.milestones = [int(iters * 0.75)]
        else:
            raise ValueError(f'no rule to rescale a {scheduler.type} '
                             'to the run length')


def build_config(comparison: Comparison, name: str, seed: int, iters: int,
                 work_dir: str) -> Config:
    """The config of one (row, seed) run: trains ``iters`` iterations,
    evaluates once at the end and dumps the validation predictions to
    ``work_dir/val.pkl``; its test loop is the training tiles,
    unaugmented."""
    cfg = Config.fromfile(comparison.config)
    if comparison.data is not None:
        comparison.data.apply(cfg)
    # merge_from_dict consumes _delete_: row() gives a copy of the row
    cfg.merge_from_dict(dict(model=comparison.row(name, cfg.model)))
    cfg.work_dir = work_dir
    cfg.experiment_name = f'{name}_seed{seed}'
    cfg.randomness = dict(seed=seed)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    _rescale_schedule(cfg, iters)
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = max(iters // 4, 1)
    cfg.val_evaluator = list(cfg.val_evaluator) + [
        dict(
            type='DumpDetResults', out_file_path=osp.join(work_dir, 'val.pkl'))
    ]
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    cfg.test_dataloader.dataset.ann_file = 'annotations/instances_train.json'
    cfg.test_dataloader.dataset.data_prefix = copy.deepcopy(
        cfg.train_dataloader.dataset.data_prefix)
    cfg.test_evaluator = dict(
        type='CocoMetric',
        ann_file=annotation_file(cfg.test_dataloader.dataset.data_root,
                                 'train'),
        metric='bbox')
    return cfg


def op_library_digest() -> Optional[str]:
    """The sha256 of the compiled op library this interpreter loads, ``None``
    without one: a rebuild from other sources or flags is another run (an
    AVX2 build gives the AVX-512 build's bits today: fixed 16-lane sums)."""
    spec = importlib.util.find_spec('mmdet_lossplug._ext')
    if spec is None or spec.origin is None:
        return None
    with open(spec.origin, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_fingerprint(cfg: Config) -> str:
    """What decides a run's result besides the Python code: its config
    (paths included), the numeric settings, the op library and torch's
    version."""
    numeric = {name: os.environ.get(name) for name in NUMERIC_ENV}
    described = json.dumps(
        dict(
            config=cfg.pretty_text,
            numeric=numeric,
            op_library=op_library_digest(),
            torch=torch.__version__),
        sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()


def finished_run(directory: str, fingerprint: str) -> Optional[dict]:
    """The result a run with this fingerprint left in ``directory``, or
    ``None`` where there is none or it came from other settings."""
    path = osp.join(directory, RESULT_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        saved = json.load(f)
    if saved['fingerprint'] != fingerprint:
        return None
    return saved['run']


def validation_parts(cfg: Config, predictions: list) -> dict:
    """The validation predictions split into the calibration and test parts
    with their annotation files, ``{}`` where the split has no parts."""
    data_root = cfg.val_dataloader.dataset.data_root
    parts = {}
    for part in (CALIBRATION_PART, TEST_PART):
        ann_file = annotation_file(data_root, part)
        if not osp.isfile(ann_file):
            return {}
        ids = {image['id'] for image in mmengine.load(ann_file)['images']}
        parts[part] = ([p for p in predictions
                        if p['img_id'] in ids], ann_file)
    return parts


def scored_part(cfg: Config, predictions: list,
                parts: dict) -> Tuple[list, str]:
    """The predictions every metric is of, and their annotation file: the
    test part where there are parts, else all validation predictions."""
    if parts:
        return parts[TEST_PART]
    return predictions, annotation_file(cfg.val_dataloader.dataset.data_root,
                                        'val')


def classes_of(cfg: Config) -> tuple:
    return tuple(cfg.val_dataloader.dataset.metainfo.classes)


def train_and_evaluate(cfg: Config, seed: int) -> Tuple[dict, list, dict]:
    """Train one (row, seed) run: its validation metrics overall and per
    class, training-tile AP50, training minutes and the path of its
    validation predictions; and those predictions with their parts
    (:func:`validation_parts`)."""
    work_dir = cfg.work_dir
    set_random_seed(seed)
    runner = Runner.from_cfg(cfg)
    start = time.time()
    runner.train()
    minutes = (time.time() - start) / 60
    # RuntimeInfoHook keeps the last validation's metrics as 'val/<name>'.
    validation = {
        key[len('val/'):]: buffer.current()
        for key, buffer in runner.message_hub.log_scalars.items()
        if key.startswith('val/')
    }
    fit = runner.test()
    predictions_file = osp.join(work_dir, 'val.pkl')
    predictions = mmengine.load(predictions_file)
    parts = validation_parts(cfg, predictions)
    if parts:  # the metrics of the test part alone
        test_predictions, test_ann_file = parts[TEST_PART]
        evaluate = PredictionEvaluation(cfg, test_ann_file)
        validation = evaluate(test_predictions,
                              evaluate.judge(test_predictions),
                              osp.join(work_dir, 'test_part'))
    metrics = {key: reported(validation, key) for key, _ in COLUMNS}
    metrics.update({
        key: reported(fit, key[len(FIT_PREFIX):])
        for key, _ in FIT_COLUMNS
    })
    run = dict(
        metrics,
        per_class=per_class_metrics(*scored_part(cfg, predictions, parts),
                                    classes_of(cfg)),
        minutes=minutes,
        predictions=predictions_file)
    return run, predictions, parts


def tempered(predictions: list, temperature: float) -> list:
    """A copy of ``predictions`` with every score tempered by ``T``."""
    predictions = copy.deepcopy(predictions)
    for pred in predictions:
        inst = pred['pred_instances']
        inst['scores'] = temper_scores(inst['scores'], temperature)
    return predictions


def temperature_scaled(comparison: Comparison, cfg: Config, run: dict,
                       predictions: list, parts: dict, work_dir: str) -> dict:
    """A run after post-hoc temperature scaling: T fitted by D-ECE on the
    calibration part and scored on the test part; without parts, fitted on
    the validation predictions it is scored on (an optimistic bound). A
    temperature keeps the order of the scores, so the training tiles' AP is
    the run's."""
    config = comparison.config
    if comparison.data is not None:  # the config reads another dataset
        config = osp.join(cfg.work_dir, 'run_config.py')
        cfg.dump(config)
    if parts:
        calibration, calibration_ann_file = parts[CALIBRATION_PART]
        report = calibrate_predictions(
            config,
            calibration,
            work_dir,
            ann_file=calibration_ann_file,
            held_out=parts[TEST_PART])
    else:
        report = calibrate_predictions(config, predictions, work_dir)
    after = report['after']
    scaled = {key: after[key] for key, _ in COLUMNS}
    scaled.update({key: run[key] for key, _ in FIT_COLUMNS})
    scored, ann_file = scored_part(cfg, predictions, parts)
    return dict(
        scaled,
        per_class=per_class_metrics(
            tempered(scored, report['temperature']), ann_file,
            classes_of(cfg)),
        minutes=run['minutes'],
        temperature=report['temperature'])


def saved_run(comparison: Comparison, iters: int, work_dir: str, name: str,
              seed: int) -> Optional[dict]:
    """The result a (row, seed) run left under today's settings, or
    ``None`` where it has not finished."""
    directory = run_dir(work_dir, name, seed)
    return finished_run(
        directory,
        run_fingerprint(
            build_config(comparison, name, seed, iters, directory)))


def run_row(comparison: Comparison, iters: int, work_dir: str, name: str,
            seed: int) -> dict:
    """One (row, seed) run; for the baseline, with its temperature-scaled
    twin under ``'temperature_scaled'``. ``'finished_earlier'`` says
    whether it was read from an earlier run's ``result.json``."""
    directory = run_dir(work_dir, name, seed)
    cfg = build_config(comparison, name, seed, iters, directory)
    fingerprint = run_fingerprint(cfg)
    run = finished_run(directory, fingerprint)
    if run is not None:
        return dict(run, finished_earlier=True)
    run, predictions, parts = train_and_evaluate(cfg, seed)
    if name == comparison.baseline:
        run['temperature_scaled'] = temperature_scaled(
            comparison, cfg, run, predictions, parts,
            osp.join(directory, 'calibration'))
    # Written whole or not at all: a run killed while writing is trained
    # again rather than read half.
    partial = osp.join(directory, RESULT_FILE + '.partial')
    with open(partial, 'w') as f:
        json.dump(dict(fingerprint=fingerprint, run=run), f, indent=2)
    os.replace(partial, osp.join(directory, RESULT_FILE))
    return dict(run, finished_earlier=False)
