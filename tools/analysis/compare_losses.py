"""Train each classification loss where its paper used it on tiles of the
NEON tree-crown photographs, over several seeds, and print per comparison
mean +- std of COCO bbox AP, AP50, D-ECE@0.5 and LaECE on held-out tiles,
AP50 on the training tiles (how well each loss fits what it saw) and
training time, then each loss's difference from its baseline with Welch's
p over the seeds.

Two comparisons on the ImageNet MobileNetV2 (configs/neon_trees):
``one-stage``, RetinaNet with focal loss as baseline against PolyFocal,
Poly-1*, sigmoid adaptive focal (FLA-53) and DR; ``two-stage``, Faster
R-CNN with softmax cross-entropy in the box classifier as baseline against
Poly-1 CE and softmax adaptive focal (FLA-53); and, not run by default,
``anchor-free``, FCOS with focal loss against DR in ``DRFCOSHead``. Each
baseline after
temperature scaling is one more row. On the ``in_site`` split (default)
the metrics are of the validation strip's test part and the temperature is
fitted on its calibration part; ``cross_site`` validates on other
photographs (and fits T on the predictions it scores).

This is the README's run command (``make run``: two seeds one-stage, one
two-stage, about 30 minutes on two cores); ``--full`` runs the study of
docs/neon_trees (five seeds one-stage, three two-stage). A run that
finished leaves ``result.json`` beside its checkpoint and is not trained
again under the same settings, so ``--full`` after ``make run`` trains
only the seeds it lacks, and a study stopped part-way goes on where it
stopped. ``--jobs`` trainings run side by side in their
own processes, each on ``cpu_count // jobs`` threads; each run's log is
``WORK_DIR/<comparison>/<split>/<loss>/seed<S>/run.log``.

    python tools/analysis/compare_losses.py [--work-dir DIR] [--iters 800]
        [--comparisons one-stage two-stage] [--split in_site|cross_site]
        [--seeds 0 1 | --full] [--losses ...] [--jobs 2] [--no-plots]
"""
import argparse
import json
import os
import os.path as osp

from mmdet_lossplug.loss_comparison import (COMPARISONS, SPLITS,
                                            format_differences, format_table,
                                            prepare_tiles, run_comparison,
                                            split_root)
from mmdet_lossplug.loss_comparison.plots import plot_all
from mmdet_lossplug.loss_comparison.runner import output_to

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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/compare_losses')
    parser.add_argument('--iters', type=int, default=800)
    parser.add_argument(
        '--comparisons',
        nargs='+',
        choices=list(COMPARISONS),
        default=list(DEFAULT_COMPARISONS))
    parser.add_argument('--split', choices=SPLITS, default='in_site')
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
        'cores)')
    parser.add_argument(
        '--no-plots', action='store_true', help='skip docs-style pictures')
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error(f'--iters must be at least 1, got {args.iters}')
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    known = {row for c in args.comparisons for row in COMPARISONS[c].rows}
    unknown = set(args.losses or ()) - known
    if unknown:
        parser.error(f'--losses {sorted(unknown)} are in none of '
                     f'{args.comparisons}: {sorted(known)}')
    return args


def seeds_of(args, comparison: str) -> list:
    if args.full:
        return list(FULL_SEEDS[comparison])
    return list(args.seeds or DEFAULT_SEEDS[comparison])


def tables(comparison, results: dict, seeds) -> str:
    """The table of means, and the differences from the baseline when
    there are seeds to compare."""
    table = format_table(results)
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


def main(argv=None):
    args = parse_args(argv)
    data_root = osp.abspath(osp.join(args.work_dir, 'data'))
    prepare_tiles(data_root)
    # Read by the configs when each worker loads them.
    os.environ['NEON_TREES_ROOT'] = data_root
    os.environ['NEON_TREES_SPLIT'] = args.split
    args.work_dir = osp.abspath(args.work_dir)
    summary = dict(vars(args), comparisons={})
    for name in args.comparisons:
        comparison = COMPARISONS[name]
        rows = [r for r in comparison.rows if r in (args.losses or [r])]
        seeds = seeds_of(args, name)
        work_dir = osp.join(args.work_dir, name, args.split)
        print(f'\n{name} ({args.split}): {", ".join(rows)}', flush=True)
        results = run_comparison(comparison, rows, seeds, args.iters,
                                 args.jobs, work_dir)
        table = tables(comparison, results, seeds)
        print(
            f'\n{name}, mean ± std over seeds {seeds} on the NEON '
            f'tree-crown {args.split} validation tiles ({args.iters} '
            f'iterations, CPU):\n{table}',
            flush=True)
        with open(osp.join(work_dir, 'results.md'), 'w') as f:
            f.write(table + '\n')
        summary['comparisons'][name] = dict(seeds=seeds, results=results)
        if not args.no_plots:
            plots = osp.join(work_dir, 'plots')
            with output_to(osp.join(plots, 'plots.log')):  # pycocotools
                paths = plot_all(work_dir, split_root(data_root, args.split),
                                 rows, seeds[0], plots)
            print(f'pictures (seed {seeds[0]}):', *paths, sep='\n')
    with open(osp.join(args.work_dir, f'results_{args.split}.json'), 'w') as f:
        json.dump(summary, f, indent=2)


if __name__ == '__main__':
    main()
