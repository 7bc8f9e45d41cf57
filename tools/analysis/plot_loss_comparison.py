"""Pictures of a tools/analysis/compare_losses.py run, from the validation
predictions it dumped (``WORK_DIR/<comparison>/<split>/<loss>/seed<S>/
val.pkl``): detections beside ground truth, reliability diagrams and score
histograms (:mod:`mmdet_lossplug.loss_comparison.plots`).

    python tools/analysis/plot_loss_comparison.py WORK_DIR
        [--comparison one-stage] [--split in_site|cross_site|custom]
        [--seed 0]
        [--losses ...] [--out-dir DIR]
"""
import argparse
import os.path as osp

from mmdet_lossplug.loss_comparison import COMPARISONS, SPLITS, split_root
from mmdet_lossplug.loss_comparison.cli import CUSTOM
from mmdet_lossplug.loss_comparison.plots import plot_all


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir')
    parser.add_argument(
        '--comparison', choices=list(COMPARISONS), default='one-stage')
    parser.add_argument(
        '--split',
        choices=SPLITS + (CUSTOM, ),
        default='in_site',
        help=f"NEON's split, or {CUSTOM} for a dataset of yours")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--losses', nargs='+')
    parser.add_argument('--out-dir')
    args = parser.parse_args()
    runs = osp.join(args.work_dir, args.comparison, args.split)
    losses = args.losses or list(COMPARISONS[args.comparison].rows)
    data_root = osp.join(args.work_dir, 'data')
    data_root = osp.join(data_root, CUSTOM) if args.split == CUSTOM else (
        split_root(data_root, args.split))
    for path in plot_all(runs, data_root, losses, args.seed, args.out_dir):
        print(path)


if __name__ == '__main__':
    main()
