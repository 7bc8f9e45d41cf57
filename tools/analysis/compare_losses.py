"""Train the small RetinaNet with each classification loss on tiles of the
NEON tree-crown photographs, over several seeds, and print mean +- std of
COCO bbox AP, AP50, D-ECE@0.5, LaECE on the validation images, AP50 on the
training tiles (how well each loss fits what it saw) and training time;
focal after temperature scaling (tools/calibrate.py, T fitted on the
validation predictions themselves) is one more row. A second table gives
each loss's difference from focal with Welch's p over the seeds.

This is the README's run command (``make run``): a CPU-sized comparison
(minutes per run), not a reproduction; the paper configs are in
``configs/polyloss`` and ``configs/dr_loss``. ``--jobs`` trainings run side
by side in their own processes, each on ``cpu_count // jobs`` threads (on
two cores two one-thread runs finish 1.5x sooner than one after the other);
each run's log is ``WORK_DIR/<loss>/seed<S>/run.log``.

    python tools/analysis/compare_losses.py [--work-dir DIR] [--iters 800]
        [--seeds 0 1 2] [--losses focal polyfocal poly1star adaptive_focal dr]
        [--jobs 2] [--no-plots]
"""
import argparse
import contextlib
import copy
import itertools
import json
import multiprocessing
import os
import os.path as osp
import runpy
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import numpy as np
import torch
from mmengine.config import Config
from mmengine.runner import Runner, set_random_seed
from scipy.stats import ttest_ind

import mmdet_lossplug  # noqa: F401  (registers our modules)

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROOT = osp.dirname(TOOLS)
# tools/ holds scripts, not packages: their functions are taken from the
# files (no sys.path edits).
calibrate_main = runpy.run_path(osp.join(TOOLS, 'calibrate.py'))['main']
neon_trees_tool = runpy.run_path(
    osp.join(TOOLS, 'dataset_converters', 'neon_trees_to_coco.py'))

CONFIG = osp.join(ROOT, 'configs', 'neon_trees',
                  'retinanet_r18-tiny_fpn_neon-trees.py')


def focal_family(loss_type: str, **loss) -> dict:
    """A row that replaces the sigmoid focal loss (alpha 0.25)."""
    return dict(
        bbox_head=dict(
            loss_cls=dict(
                _delete_=True,
                type=loss_type,
                use_sigmoid=True,
                alpha=0.25,
                **loss)))


# What each row changes in the config's model; everything else is shared.
ROWS = {
    'focal':
    focal_family('FocalLoss', gamma=2.0),
    'polyfocal':
    focal_family('PolyFocalLoss', gamma=2.0, epsilon=-1.0),
    'poly1star':
    focal_family('Poly1StarFocalLoss', gamma=2.0, epsilon=-0.4),
    # Sigmoid FLA-53 (configs/calibration): gamma 5 below pt 0.2, else 3.
    'adaptive_focal':
    focal_family('AdaptiveFocalLoss', gammas=(5.0, 3.0), thresholds=(0.2, )),
    # As configs/dr_loss: the head pools all levels per image, prior 0.5,
    # and the official test threshold.
    'dr':
    dict(
        bbox_head=dict(
            type='DRRetinaHead', loss_cls=dict(_delete_=True, type='DRLoss')),
        test_cfg=dict(score_thr=0.2)),
}
TEMPERATURE_ROW = 'focal + T'
# (metric key, column title) of the validation metrics.
COLUMNS = (('coco/bbox_mAP', 'AP'), ('coco/bbox_mAP_50', 'AP50'),
           ('calibration/d_ece_50', 'D-ECE@0.5'), ('calibration/laece',
                                                   'LaECE'))
# The same model tested on the tiles it was trained on.
FIT_PREFIX = 'train_tiles/'
FIT_COLUMNS = ((FIT_PREFIX + 'coco/bbox_mAP_50', 'train-tile AP50'), )
TABLE_COLUMNS = COLUMNS + FIT_COLUMNS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/compare_losses')
    parser.add_argument('--iters', type=int, default=800)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument(
        '--losses', nargs='+', choices=list(ROWS), default=list(ROWS))
    parser.add_argument(
        '--jobs',
        type=int,
        default=2,
        help='trainings side by side (default 2: the CPU machines have two '
        'cores)')
    parser.add_argument(
        '--no-plots', action='store_true', help='skip docs-style pictures')
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error(f'--iters must be at least 1, got {args.iters}')
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    return args


def build_config(name: str, seed: int, iters: int, work_dir: str) -> Config:
    """The config of one (loss, seed) run: trains ``iters`` iterations,
    evaluates once at the end and dumps the validation predictions to
    ``work_dir/val.pkl``."""
    cfg = Config.fromfile(CONFIG)
    # merge_from_dict consumes _delete_: give it a copy of the row
    cfg.merge_from_dict(dict(model=copy.deepcopy(ROWS[name])))
    cfg.work_dir = work_dir
    cfg.experiment_name = f'{name}_seed{seed}'
    cfg.randomness = dict(seed=seed)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.param_scheduler[0].end = min(cfg.param_scheduler[0].end, iters)
    cfg.param_scheduler[1].milestones = [int(iters * 0.75)]
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = max(iters // 4, 1)
    cfg.val_evaluator = list(cfg.val_evaluator) + [
        dict(
            type='DumpDetResults', out_file_path=osp.join(work_dir, 'val.pkl'))
    ]
    # runner.test() after training: the training tiles, unaugmented.
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    cfg.test_dataloader.dataset.ann_file = 'annotations/instances_train.json'
    cfg.test_dataloader.dataset.data_prefix = dict(img='train/')
    cfg.test_evaluator = dict(
        type='CocoMetric',
        ann_file=osp.join(cfg.test_dataloader.dataset.data_root, 'annotations',
                          'instances_train.json'),
        metric='bbox')
    return cfg


def reported(metrics: dict, key: str) -> float:
    """``metrics[key]``; 0 for a COCO AP that is missing because mmdet's
    CocoMetric reports nothing for a model without a detection above the
    test threshold (COCOeval's AP is 0 then)."""
    if key in metrics:
        return metrics[key]
    if key.startswith('coco/'):
        return 0.0
    raise KeyError(f'the evaluation did not report {key}')


def train_and_evaluate(name: str, seed: int, args) -> dict:
    """Train one (loss, seed) run; its validation metrics, training-tile
    AP50 and training minutes."""
    work_dir = osp.join(args.work_dir, name, f'seed{seed}')
    cfg = build_config(name, seed, args.iters, work_dir)
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
    metrics = {key: reported(validation, key) for key, _ in COLUMNS}
    metrics.update({
        key: reported(fit, key[len(FIT_PREFIX):])
        for key, _ in FIT_COLUMNS
    })
    return dict(
        metrics, minutes=minutes, predictions=osp.join(work_dir, 'val.pkl'))


def temperature_scaled(run: dict, work_dir: str) -> dict:
    """The focal run after tools/calibrate.py's temperature (T fitted by
    D-ECE on these same validation predictions: an optimistic bound). A
    temperature keeps the order of the scores, so the training tiles' AP is
    the focal run's."""
    report = calibrate_main([
        CONFIG, run['predictions'], '--work-dir', work_dir, '--calibrator',
        'temperature'
    ])
    after = report['after']
    scaled = {key: after[key] for key, _ in COLUMNS}
    scaled.update({key: run[key] for key, _ in FIT_COLUMNS})
    return dict(
        scaled, minutes=run['minutes'], temperature=report['temperature'])


@contextlib.contextmanager
def output_to(log_file: str):
    """Send this process's stdout and stderr (file descriptors, so that
    mmengine's and pycocotools' prints follow) to ``log_file``."""
    os.makedirs(osp.dirname(log_file), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, 'a') as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy_of_fd in zip((1, 2), saved):
            os.dup2(copy_of_fd, fd)
            os.close(copy_of_fd)


def run_one(name: str, seed: int, args) -> dict:
    """One (loss, seed) training in a worker process, logged to its own
    file; with the temperature-scaled focal row when ``name`` is focal."""
    run_dir = osp.join(args.work_dir, name, f'seed{seed}')
    with output_to(osp.join(run_dir, 'run.log')):
        try:
            run = train_and_evaluate(name, seed, args)
            if name == 'focal':
                run['temperature_scaled'] = temperature_scaled(
                    run, osp.join(run_dir, 'calibration'))
        except Exception:
            traceback.print_exc()  # the whole story in the run's log
            raise
    return run


def mean_std(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f'{values.mean():.1f} ± {std:.1f}'


def format_table(results: dict) -> str:
    """Mean ± sample standard deviation over seeds of each row; metrics in
    percent, training time in minutes."""
    header = ['loss', 'seeds'] + [f'{t} (%)'
                                  for _, t in TABLE_COLUMNS] + ['train min']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for name, seeds in results.items():
        cells = [name, str(len(seeds))]
        cells += [
            mean_std([100 * r[k] for r in seeds]) for k, _ in TABLE_COLUMNS
        ]
        cells.append(mean_std([r['minutes'] for r in seeds]))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def format_differences(results: dict, baseline: str = 'focal') -> str:
    """Each loss's mean minus the baseline's, metric by metric, in points,
    with the two-sided p of Welch's t-test over the seeds (scipy): small p
    says the gap is unlikely to be seed noise. Not corrected for the many
    comparisons, and weak with few seeds."""
    header = ['loss'] + [f'{t} vs {baseline}' for _, t in TABLE_COLUMNS]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for name, seeds in results.items():
        if name in (baseline, TEMPERATURE_ROW):
            continue
        cells = [name]
        for key, _ in TABLE_COLUMNS:
            values = [100 * r[key] for r in seeds]
            base = [100 * r[key] for r in results[baseline]]
            p = ttest_ind(values, base, equal_var=False).pvalue
            cells.append(f'{np.mean(values) - np.mean(base):+.1f} '
                         f'(p {p:.3f})')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def run_all(args) -> dict:
    """Every (loss, seed) run, ``args.jobs`` at a time, with a line of
    progress as each ends; the results by row, seeds in order."""
    runs = [(name, seed) for seed in args.seeds for name in args.losses]
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    print(
        f'{len(runs)} trainings of {args.iters} iterations, {args.jobs} at a '
        f'time on {threads} thread(s) each; logs in '
        f'{args.work_dir}/<loss>/seed<S>/run.log',
        flush=True)
    finished, waiting, running = {}, iter(runs), {}
    start = time.time()

    def start_next(pool):
        for name, seed in itertools.islice(waiting, 1):
            running[pool.submit(run_one, name, seed, args)] = name, seed

    # spawn: a fresh interpreter per worker, not a fork of this one's
    # thread pools. At most ``jobs`` runs are submitted at a time, so that
    # a failure stops the comparison without starting the rest.
    with ProcessPoolExecutor(
            args.jobs,
            mp_context=multiprocessing.get_context('spawn'),
            initializer=torch.set_num_threads,
            initargs=(threads, )) as pool:
        for _ in range(args.jobs):
            start_next(pool)
        while running:
            ended, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in ended:
                name, seed = running.pop(future)
                try:
                    run = finished[name, seed] = future.result()
                except Exception as error:
                    log = osp.join(args.work_dir, name, f'seed{seed}',
                                   'run.log')
                    raise RuntimeError(
                        f'training {name} with seed {seed} failed: '
                        f'{error!r}; its output is in {log}') from error
                start_next(pool)
                done, elapsed = len(finished), (time.time() - start) / 60
                shown = ', '.join(f'{t} {100 * run[k]:.1f}'
                                  for k, t in TABLE_COLUMNS)
                print(
                    f'=== [{done}/{len(runs)}] {name}, seed {seed}: {shown} '
                    f"({run['minutes']:.1f} min); {elapsed:.1f} min so far, "
                    f'about {elapsed / done * (len(runs) - done):.1f} min to '
                    'go',
                    flush=True)
    results = {
        name: [finished[name, seed] for seed in args.seeds]
        for name in args.losses
    }
    if 'focal' in results:
        results[TEMPERATURE_ROW] = [
            run.pop('temperature_scaled') for run in results['focal']
        ]
    return results


def main(argv=None):
    args = parse_args(argv)
    data_root = osp.abspath(osp.join(args.work_dir, 'data'))
    if not osp.isfile(
            osp.join(data_root, 'annotations', 'instances_val.json')):
        neon_trees_tool['convert'](
            neon_trees_tool['deepforest_data_dir'](),
            data_root,
            tile=400,
            stride=256)
    # Read by the config when each worker loads it.
    os.environ['NEON_TREES_ROOT'] = data_root
    args.work_dir = osp.abspath(args.work_dir)

    results = run_all(args)
    table = format_table(results)
    if 'focal' in results and len(args.seeds) > 1:
        table += ('\n\nDifference from focal in points (Welch p over the '
                  f'seeds):\n{format_differences(results)}')
    print(f'\nMean ± std over seeds {args.seeds} on the NEON tree-crown '
          f'validation tiles ({args.iters} iterations, CPU):\n{table}')
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(vars(args), results=results), f, indent=2)
    if not args.no_plots:
        from plot_loss_comparison import plot_all
        plots = osp.join(args.work_dir, 'plots')
        with output_to(osp.join(plots, 'plots.log')):  # pycocotools' prints
            paths = plot_all(args.work_dir, data_root, args.losses,
                             args.seeds[0], plots)
        print(f'pictures (seed {args.seeds[0]}):', *paths, sep='\n')


if __name__ == '__main__':
    main()
