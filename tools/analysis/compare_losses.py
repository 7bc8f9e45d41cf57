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
import json
import os
import os.path as osp

from mmdet_lossplug.loss_comparison import (ONE_STAGE, format_differences,
                                            format_table, prepare_tiles,
                                            run_comparison)
from mmdet_lossplug.loss_comparison.plots import plot_all
from mmdet_lossplug.loss_comparison.runner import output_to


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/compare_losses')
    parser.add_argument('--iters', type=int, default=800)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument(
        '--losses',
        nargs='+',
        choices=list(ONE_STAGE.rows),
        default=list(ONE_STAGE.rows))
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


def tables(results: dict, seeds) -> str:
    """The table of means, and the differences from the baseline when
    there are seeds to compare."""
    table = format_table(results)
    baseline = ONE_STAGE.baseline
    if baseline in results and len(seeds) > 1:
        differences = format_differences(
            results, baseline, skipped=(ONE_STAGE.temperature_row, ))
        table += (f'\n\nDifference from {baseline} in points (Welch p over '
                  f'the seeds):\n{differences}')
    return table


def main(argv=None):
    args = parse_args(argv)
    data_root = osp.abspath(osp.join(args.work_dir, 'data'))
    prepare_tiles(data_root)
    # Read by the config when each worker loads it.
    os.environ['NEON_TREES_ROOT'] = data_root
    args.work_dir = osp.abspath(args.work_dir)

    results = run_comparison(ONE_STAGE, args.losses, args.seeds, args.iters,
                             args.jobs, args.work_dir)
    table = tables(results, args.seeds)
    print(f'\nMean ± std over seeds {args.seeds} on the NEON tree-crown '
          f'validation tiles ({args.iters} iterations, CPU):\n{table}')
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(vars(args), results=results), f, indent=2)
    if not args.no_plots:
        plots = osp.join(args.work_dir, 'plots')
        with output_to(osp.join(plots, 'plots.log')):  # pycocotools' prints
            paths = plot_all(args.work_dir, data_root, args.losses,
                             args.seeds[0], plots)
        print(f'pictures (seed {args.seeds[0]}):', *paths, sep='\n')


if __name__ == '__main__':
    main()
