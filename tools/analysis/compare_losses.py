"""Train the small RetinaNet with each classification loss on tiles of the
NEON tree-crown photographs, over several seeds, and print mean +- std of
COCO bbox AP, AP50, D-ECE@0.5, LaECE (when the metric reports it) and
training time; focal after temperature scaling (tools/calibrate.py, T fitted
on the validation predictions themselves) is one more row.

This is the README's run command (``make run``): a CPU-sized comparison
(minutes per run), not a reproduction; the paper configs are in
``configs/polyloss`` and ``configs/dr_loss``.

    python tools/analysis/compare_losses.py [--work-dir DIR] [--iters 200]
        [--seeds 0 1 2] [--losses focal polyfocal poly1star adaptive_focal dr]
        [--no-plots]
"""
import argparse
import copy
import json
import os
import os.path as osp
import runpy
import time

import numpy as np
from mmengine.config import Config
from mmengine.runner import Runner, set_random_seed

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
# (metric key, column title); LaECE is shown when the metric reports it.
COLUMNS = (('coco/bbox_mAP', 'AP'), ('coco/bbox_mAP_50', 'AP50'),
           ('calibration/d_ece_50', 'D-ECE@0.5'), ('calibration/laece',
                                                   'LaECE'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/compare_losses')
    parser.add_argument('--iters', type=int, default=200)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument(
        '--losses', nargs='+', choices=list(ROWS), default=list(ROWS))
    parser.add_argument(
        '--no-plots', action='store_true', help='skip docs-style pictures')
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error(f'--iters must be at least 1, got {args.iters}')
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
    return cfg


def train_and_evaluate(name: str, seed: int, args) -> dict:
    """Train one (loss, seed) run; its validation metrics and minutes."""
    work_dir = osp.join(args.work_dir, name, f'seed{seed}')
    cfg = build_config(name, seed, args.iters, work_dir)
    set_random_seed(seed)
    runner = Runner.from_cfg(cfg)
    start = time.time()
    runner.train()
    minutes = (time.time() - start) / 60
    # RuntimeInfoHook keeps the last validation's metrics as 'val/<name>'.
    scalars = runner.message_hub.log_scalars
    metrics = {
        key: scalars['val/' + key].current()
        for key, _ in COLUMNS if 'val/' + key in scalars
    }
    return dict(
        metrics, minutes=minutes, predictions=osp.join(work_dir, 'val.pkl'))


def temperature_scaled(run: dict, work_dir: str) -> dict:
    """The focal run after tools/calibrate.py's temperature (T fitted by
    D-ECE on these same validation predictions: an optimistic bound)."""
    report = calibrate_main([
        CONFIG, run['predictions'], '--work-dir', work_dir, '--calibrator',
        'temperature'
    ])
    after = report['after']
    return dict({
        key: after[key]
        for key, _ in COLUMNS if key in after
    },
                minutes=run['minutes'],
                temperature=report['temperature'])


def mean_std(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f'{values.mean():.1f} ± {std:.1f}'


def format_table(results: dict) -> str:
    """Mean ± sample standard deviation over seeds of each row; metrics in
    percent, training time in minutes."""
    runs = [run for seeds in results.values() for run in seeds]
    columns = [(k, t) for k, t in COLUMNS if all(k in r for r in runs)]
    header = ['loss', 'seeds'] + [f'{t} (%)'
                                  for _, t in columns] + ['train min']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for name, seeds in results.items():
        cells = [name, str(len(seeds))]
        cells += [mean_std([100 * r[k] for r in seeds]) for k, _ in columns]
        cells.append(mean_std([r['minutes'] for r in seeds]))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


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
    os.environ['NEON_TREES_ROOT'] = data_root
    args.work_dir = osp.abspath(args.work_dir)

    results = {name: [] for name in args.losses}
    if 'focal' in args.losses:
        results[TEMPERATURE_ROW] = []
    total = len(args.losses) * len(args.seeds)
    start, done = time.time(), 0
    for seed in args.seeds:
        for name in args.losses:
            print(
                f'=== [{done + 1}/{total}] {name}, seed {seed}: '
                f'{ROWS[name]}',
                flush=True)
            run = train_and_evaluate(name, seed, args)
            results[name].append(run)
            if name == 'focal':
                results[TEMPERATURE_ROW].append(
                    temperature_scaled(
                        run,
                        osp.join(args.work_dir, name, f'seed{seed}',
                                 'calibration')))
            done += 1
            elapsed = (time.time() - start) / 60
            shown = ', '.join(f'{t} {100 * run[k]:.1f}' for k, t in COLUMNS
                              if k in run)
            print(
                f'=== [{done}/{total}] {name}, seed {seed}: {shown} '
                f"({run['minutes']:.1f} min); {elapsed:.1f} min so far, about "
                f'{elapsed / done * (total - done):.1f} min to go',
                flush=True)

    table = format_table(results)
    print(f'\nMean ± std over seeds {args.seeds} on the NEON tree-crown '
          f'validation tiles ({args.iters} iterations, CPU):\n{table}')
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(vars(args), results=results), f, indent=2)
    if not args.no_plots:
        from plot_loss_comparison import plot_all
        plot_all(args.work_dir, data_root, args.losses, args.seeds[0])


if __name__ == '__main__':
    main()
