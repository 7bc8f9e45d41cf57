"""Pictures of a tools/analysis/compare_losses.py run, from the validation
predictions it dumped (``WORK_DIR/<loss>/seed<S>/val.pkl``): detections
beside ground truth, reliability diagrams and score histograms
(:mod:`mmdet_lossplug.loss_comparison.plots`).

    python tools/analysis/plot_loss_comparison.py WORK_DIR [--seed 0]
        [--losses ...] [--out-dir WORK_DIR/plots]
"""
import argparse
import os.path as osp

from mmdet_lossplug.loss_comparison import ONE_STAGE
from mmdet_lossplug.loss_comparison.plots import plot_all


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--losses', nargs='+', default=list(ONE_STAGE.rows))
    parser.add_argument('--out-dir')
    args = parser.parse_args()
    for path in plot_all(args.work_dir, osp.join(args.work_dir, 'data'),
                         args.losses, args.seed, args.out_dir):
        print(path)


if __name__ == '__main__':
    main()
