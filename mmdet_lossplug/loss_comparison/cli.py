"""Train each classification loss where its paper used it, over several
seeds, and print per comparison mean ± std of COCO bbox AP, AP50,
D-ECE@0.5 and LaECE on held-out images (and, with several classes, each
class's), AP50 on the training images (how well each loss fits what it
saw) and training time, then each loss's difference from its baseline
with Welch's p over the seeds.

Two comparisons: ``one-stage``, a sigmoid dense head (RetinaNet, ATSS,
FCOS, ...) with focal loss as baseline against PolyFocal, Poly-1*, sigmoid
adaptive focal (FLA-53) and DR (in the head's DR variant); ``two-stage``,
a two-stage detector with softmax cross-entropy in the box classifier as
baseline against Poly-1 CE and softmax adaptive focal (FLA-53). Each
baseline after temperature scaling is one more row.

The data is NEON's tree-crown tiles on the ImageNet MobileNetV2 of
configs/neon_trees by default (``--split in_site``: the metrics are of the
validation strip's test part and the temperature is fitted on its
calibration part; ``cross_site``: other photographs, T fitted on what it
is scored on; and, not run by default, ``anchor-free``: FCOS, focal
against DR), or a user's COCO-format dataset (``--train-ann`` ...) with
the user's configs (``--one-stage-config``, ``--two-stage-config``): the
classes are read from the annotations, the metrics are of the test part
of the validation images and T is fitted on the calibration part
(``--calib-ann``, or half the validation images, split by image with
``--calib-seed``).

A run that finished leaves ``result.json`` beside its checkpoint and is
not trained again under the same settings. ``--jobs`` trainings run side
by side in their own processes, each on ``usable CPUs // jobs`` threads
(the CPUs a scheduler gave the process, else all);
each run's log is ``WORK_DIR/<comparison>/<split>/<loss>/seed<S>/run.log``
(``<split>`` is ``custom`` for a user's dataset). For a scheduler,
``--list-runs`` prints one shell command per run, which trains that run
alone (``--run``); ``--collect`` then prints the tables of the finished
runs and names the missing ones.

    python -m mmdet_lossplug.loss_comparison [--work-dir DIR] [--iters 800]
        [--comparisons one-stage two-stage] [--split in_site|cross_site]
        [--train-ann F --train-images D --val-ann F --val-images D
         [--calib-ann F --calib-images D] [--calib-seed 0]
         [--one-stage-config C] [--two-stage-config C]]
        [--seeds 0 1 | --full] [--losses ...] [--jobs 2] [--no-plots]
        [--list-runs | --run COMPARISON LOSS SEED | --collect]
"""
import argparse
import contextlib
import dataclasses
import json
import os
import os.path as osp
import shlex
import sys

import torch
from mmengine.config import Config

from .data import SPLITS, prepare_coco, prepare_tiles, split_root
from .plots import plot_all
from .process_pool import output_to, threads_per_job
from .rows import COMPARISONS
from .study import collect_comparison, run_comparison
from .tables import format_differences, format_per_class, format_table
from .training import NUMERIC_ENV, RESULT_FILE, run_dir, run_row

# make run's subset (about 30 minutes on two cores), and the study's seeds
# per comparison (--full).
DEFAULT_COMPARISONS = ('one-stage', 'two-stage')
DEFAULT_SEEDS = {
    'one-stage': (0, 1),
    'two-stage': (0, ),
    'anchor-free': (0, 1)
}
FULL_SEEDS = {
    'one-stage': (0, 1, 2, 3, 4),
    'two-stage': (0, 1, 2),
    'anchor-free': (0, 1, 2)
}
# The folder of a user's dataset's runs, where NEON's have their split.
CUSTOM = 'custom'
DATA_ARGS = ('train_ann', 'train_images', 'val_ann', 'val_images')
CALIB_ARGS = ('calib_ann', 'calib_images')
CONFIG_ARGS = {
    'one-stage': 'one_stage_config',
    'two-stage': 'two_stage_config'
}
# What the environment passes on to a listed run command: the configs'
# paths (NEON_TREES_*, PRETRAINED_ROOT) and the numeric path.
PASSED_ENV = ('PRETRAINED_ROOT', 'PYTHONPATH') + NUMERIC_ENV


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/compare_losses')
    parser.add_argument('--iters', type=int, default=800)
    parser.add_argument(
        '--comparisons',
        nargs='+',
        choices=list(COMPARISONS),
        help='default: one-stage two-stage (a user\'s dataset: those '
        'whose config is given)')
    parser.add_argument(
        '--split', choices=SPLITS, default='in_site', help='the NEON split')
    data = parser.add_argument_group(
        "a user's COCO-format dataset instead of NEON's")
    for part in ('train', 'val', 'calib'):
        data.add_argument(f'--{part}-ann', metavar='FILE')
        data.add_argument(f'--{part}-images', metavar='DIR')
    data.add_argument(
        '--calib-seed',
        type=int,
        default=0,
        help='seed of the split of the validation images without '
        '--calib-ann (default 0)')
    data.add_argument(
        '--one-stage-config',
        metavar='CONFIG',
        help='a sigmoid dense head (RetinaNet-, ATSS-, FCOS-style)')
    data.add_argument(
        '--two-stage-config',
        metavar='CONFIG',
        help='a two-stage detector (its RoI box classifier)')
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        '--seeds',
        type=int,
        nargs='+',
        help='seeds of every comparison (default ' +
        ', '.join(f'{list(s)} {name}'
                  for name, s in DEFAULT_SEEDS.items()) + ')')
    seeds.add_argument(
        '--full',
        action='store_true',
        help='the study: seeds ' +
        ', '.join(f'{list(s)} {name}' for name, s in FULL_SEEDS.items()))
    parser.add_argument(
        '--losses',
        nargs='+',
        help='rows to train (default: every row of each comparison): ' +
        ', '.join(f'{name}: {list(c.rows)}'
                  for name, c in COMPARISONS.items()))
    parser.add_argument(
        '--jobs',
        type=int,
        default=2,
        help='trainings side by side (default 2: the CPU machines have two '
        'cores); each runs on usable CPUs // jobs threads (a scheduler\'s '
        'allotment, else all CPUs), with --run too')
    parser.add_argument(
        '--no-plots', action='store_true', help='skip docs-style pictures')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        '--list-runs',
        action='store_true',
        help='print one shell command per run (for a scheduler) and exit')
    mode.add_argument(
        '--run',
        nargs=3,
        metavar=('COMPARISON', 'LOSS', 'SEED'),
        help='train this one run (a line of --list-runs)')
    mode.add_argument(
        '--collect',
        action='store_true',
        help='train nothing: the tables of the finished runs, and which '
        'are missing (exit status 1 if any)')
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error(f'--iters must be at least 1, got {args.iters}')
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    args.custom = any(getattr(args, a) for a in DATA_ARGS + CALIB_ARGS)
    if args.custom:
        lacking = [a for a in DATA_ARGS if not getattr(args, a)]
        if lacking or bool(args.calib_ann) != bool(args.calib_images):
            parser.error('a dataset needs --train-ann, --train-images, '
                         '--val-ann and --val-images (and --calib-ann with '
                         '--calib-images or neither)')
        given = [c for c, a in CONFIG_ARGS.items() if getattr(args, a)]
        if not given:
            parser.error('a dataset needs --one-stage-config or '
                         '--two-stage-config (or both)')
        args.comparisons = args.comparisons or given
        unconfigured = [c for c in args.comparisons if c not in given]
        if unconfigured:
            parser.error(f'--comparisons {unconfigured}: on a dataset of '
                         'yours, only those with --one-stage-config / '
                         '--two-stage-config (anchor-free is the one-stage '
                         'comparison with an FCOS config)')
    elif any(getattr(args, a) for a in CONFIG_ARGS.values()):
        parser.error('--one-stage-config / --two-stage-config go with a '
                     'dataset (--train-ann ...); NEON uses configs/neon_trees')
    args.comparisons = args.comparisons or list(DEFAULT_COMPARISONS)
    known = {row for c in args.comparisons for row in COMPARISONS[c].rows}
    unknown = set(args.losses or ()) - known
    if unknown:
        parser.error(f'--losses {sorted(unknown)} are in none of '
                     f'{args.comparisons}: {sorted(known)}')
    if args.run:
        name, loss, seed = args.run
        if name not in args.comparisons or loss not in COMPARISONS[
                name].rows or not seed.isdigit():
            parser.error(f'--run {name} {loss} {seed}: not a run of '
                         f'{args.comparisons}')
        args.run = (name, loss, int(seed))
    return args


def seeds_of(args, comparison: str) -> list:
    if args.full:
        return list(FULL_SEEDS[comparison])
    return list(args.seeds or DEFAULT_SEEDS[comparison])


def tables(comparison, results: dict, seeds) -> str:
    """The table of means (and, with several classes, per class), and the
    differences from the baseline when there are seeds to compare."""
    table = format_table(results)
    runs = next(iter(results.values()), [{}])
    if len(runs[0].get('per_class', ())) > 1:
        table += f'\n\nPer class:\n{format_per_class(results)}'
    baseline = comparison.baseline
    if len(seeds) == 1:
        return table + ('\n\nOne seed: no spread and no p-values (--full '
                        'runs the study\'s seeds).')
    if baseline in results:
        differences = format_differences(
            results, baseline, skipped=(comparison.temperature_row, ))
        table += (f'\n\nDifference from {baseline} in points (Welch p over '
                  f'the seeds):\n{differences}')
    return table


def check_pretrained(config: str, cfg: Config) -> None:
    """A backbone's local pretrained checkpoint exists: a clear error now,
    not in every worker."""
    init_cfg = cfg.model.get('backbone', {}).get('init_cfg') or {}
    checkpoint = init_cfg.get('checkpoint') if isinstance(init_cfg,
                                                          dict) else None
    if checkpoint and '://' not in checkpoint and not osp.isfile(checkpoint):
        raise SystemExit(
            f'{config}: the backbone checkpoint {checkpoint} does not exist '
            '(NEON\'s configs: make install converts it; PRETRAINED_ROOT '
            'says where it is)')


@contextlib.contextmanager
def stdout_to_stderr():
    """What is printed meanwhile (mmengine's messages, e.g. the config's
    environment variables) goes to stderr, as file descriptor and as
    ``sys.stdout``: ``--list-runs``'s stdout is the commands alone, for
    ``xargs`` or a job array."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)


def prepare(args) -> tuple:
    """The data (checked; prepared into WORK_DIR/data) and the
    comparisons: the runs' folder name and ``{name: Comparison}``."""
    data_root = osp.join(args.work_dir, 'data')
    if args.custom:
        calib = (args.calib_ann, args.calib_images) if args.calib_ann else None
        try:
            data = prepare_coco(
                osp.join(data_root,
                         CUSTOM), (args.train_ann, args.train_images),
                (args.val_ann, args.val_images), calib, args.calib_seed)
        except ValueError as error:
            raise SystemExit(f'bad dataset: {error}') from error
        comparisons = {}
        for name in args.comparisons:
            config = osp.abspath(getattr(args, CONFIG_ARGS[name]))
            if not osp.isfile(config):
                raise SystemExit(f'{config}: no such config')
            comparisons[name] = dataclasses.replace(
                COMPARISONS[name], config=config, data=data)
        folder = CUSTOM
    else:
        prepare_tiles(data_root)
        # Read by the configs when each worker loads them.
        os.environ['NEON_TREES_ROOT'] = data_root
        os.environ['NEON_TREES_SPLIT'] = args.split
        comparisons = {name: COMPARISONS[name] for name in args.comparisons}
        folder = args.split
    for comparison in comparisons.values():
        cfg = Config.fromfile(comparison.config)
        try:
            comparison.check(cfg.model)
        except ValueError as error:
            raise SystemExit(f'bad config: {error}') from error
        check_pretrained(comparison.config, cfg)
    return folder, comparisons


def rows_of(args, comparison) -> list:
    return [r for r in comparison.rows if r in (args.losses or [r])]


def run_command(args, argv, comparison: str, loss: str, seed: int) -> str:
    """The shell command that trains one run alone, from this directory,
    with this environment's paths and numeric settings."""
    env = [
        f'{name}={shlex.quote(os.environ[name])}' for name in PASSED_ENV
        if name in os.environ
    ]
    command = [sys.executable, '-m', 'mmdet_lossplug.loss_comparison'
               ] + argv + ['--run', comparison, loss,
                           str(seed)]
    return ' '.join([f'cd {shlex.quote(os.getcwd())} &&'] +
                    (['env'] + env if env else []) + [shlex.join(command)])


def forwarded_argv(args) -> list:
    """The arguments every listed run shares, paths made absolute."""
    argv = ['--work-dir', args.work_dir, '--iters', str(args.iters)]
    argv += ['--jobs', str(args.jobs), '--comparisons', *args.comparisons]
    if not args.custom:
        return argv + ['--split', args.split]
    for name in DATA_ARGS + CALIB_ARGS + tuple(CONFIG_ARGS.values()):
        value = getattr(args, name)
        if value:
            argv += [f'--{name.replace("_", "-")}', osp.abspath(value)]
    return argv + ['--calib-seed', str(args.calib_seed)]


def train_one(comparison, args, folder: str, loss: str, seed: int) -> None:
    """``--run``: one run in this process, its output in its run.log."""
    work_dir = osp.join(args.work_dir, args.run[0], folder)
    torch.set_num_threads(threads_per_job(args.jobs))
    log = osp.join(run_dir(work_dir, loss, seed), 'run.log')
    with output_to(log):
        run = run_row(comparison, args.iters, work_dir, loss, seed)
    state = ('finished earlier' if run['finished_earlier'] else
             f"trained in {run['minutes']:.1f} min")
    print(f'{args.run[0]} {loss} seed {seed}: {state}; '
          f'{osp.join(run_dir(work_dir, loss, seed), RESULT_FILE)}')


def main(argv=None):
    args = parse_args(argv)
    args.work_dir = osp.abspath(args.work_dir)
    with (stdout_to_stderr() if args.list_runs else contextlib.nullcontext()):
        folder, comparisons = prepare(args)
    if args.list_runs:
        argv = forwarded_argv(args)
        for name, comparison in comparisons.items():
            for seed in seeds_of(args, name):
                for loss in rows_of(args, comparison):
                    print(run_command(args, argv, name, loss, seed))
        return 0
    if args.run:
        name, loss, seed = args.run
        train_one(comparisons[name], args, folder, loss, seed)
        return 0
    summary = dict(vars(args), comparisons={})
    all_missing = []
    for name, comparison in comparisons.items():
        rows = rows_of(args, comparison)
        seeds = seeds_of(args, name)
        work_dir = osp.join(args.work_dir, name, folder)
        print(f'\n{name} ({folder}): {", ".join(rows)}', flush=True)
        if args.collect:
            results, missing = collect_comparison(comparison, rows, seeds,
                                                  args.iters, work_dir)
            all_missing += [(name, *run) for run in missing]
            if not results:
                continue
        else:
            results, missing = run_comparison(comparison, rows, seeds,
                                              args.iters, args.jobs,
                                              work_dir), []
        table = tables(comparison, results, seeds)
        where = (f'the NEON tree-crown {args.split} validation tiles'
                 if not args.custom else f'the test part of {args.val_ann}')
        print(
            f'\n{name}, mean ± std over seeds {seeds} on {where} '
            f'({args.iters} iterations, CPU):\n{table}',
            flush=True)
        with open(osp.join(work_dir, 'results.md'), 'w') as f:
            f.write(table + '\n')
        summary['comparisons'][name] = dict(seeds=seeds, results=results)
        if not args.no_plots and not missing:
            plots = osp.join(work_dir, 'plots')
            data_root = (
                comparison.data.root if comparison.data else split_root(
                    osp.join(args.work_dir, 'data'), args.split))
            with output_to(osp.join(plots, 'plots.log')):  # pycocotools
                paths = plot_all(work_dir, data_root, rows, seeds[0], plots)
            print(f'pictures (seed {seeds[0]}):', *paths, sep='\n')
    if all_missing:
        print(f'\n{len(all_missing)} runs have not finished (no '
              f'{RESULT_FILE} of these settings):')
        argv = forwarded_argv(args)
        for run in all_missing:
            print(run_command(args, argv, *run))
        return 1
    with open(osp.join(args.work_dir, f'results_{folder}.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    return 0
