"""Train the small RetinaNet with each classification loss on the generated
shapes dataset and print a table of COCO bbox AP (pycocotools) and D-ECE
(detection calibration error at IoU 0.5).

This is the README's run command (``make run``). It is a smoke-scale
comparison on a CPU (minutes), not a reproduction: the paper configs are in
``configs/polyloss``.

    python tools/analysis/compare_losses.py [--work-dir DIR] [--iters 600]
        [--losses focal polyfocal poly1star adaptive_focal dr] [--seed 0]
"""
import argparse
import os
import os.path as osp
import runpy
import time

from mmengine.config import Config
from mmengine.runner import Runner, set_random_seed

TOOLS = osp.dirname(osp.dirname(osp.abspath(__file__)))
ROOT = osp.dirname(TOOLS)
# tools/misc is not a package: the generator is taken from its file.
generate = runpy.run_path(
    osp.join(TOOLS, 'misc', 'generate_shapes_dataset.py'))['generate']

import mmdet_lossplug  # noqa: E402,F401

CONFIG = osp.join(ROOT, 'configs', 'shapes',
                  'retinanet_r18-tiny_fpn_shapes.py')


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
METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75',
           'calibration/d_ece_50')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/compare_losses')
    parser.add_argument('--iters', type=int, default=600)
    parser.add_argument(
        '--losses', nargs='+', choices=list(ROWS), default=list(ROWS))
    parser.add_argument('--num-train', type=int, default=256)
    parser.add_argument('--num-val', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def train_and_evaluate(name: str, data_root: str, args) -> dict:
    """Train one row and return its COCO metrics."""
    os.environ['SHAPES_ROOT'] = data_root
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(dict(model=ROWS[name]))
    cfg.work_dir = osp.join(args.work_dir, name)
    cfg.experiment_name = name
    cfg.randomness = dict(seed=args.seed)
    cfg.train_cfg.max_iters = args.iters
    cfg.train_cfg.val_interval = args.iters  # evaluate once, at the end
    cfg.param_scheduler[1].milestones = [int(args.iters * 0.75)]
    cfg.default_hooks.checkpoint.interval = args.iters
    set_random_seed(args.seed)
    runner = Runner.from_cfg(cfg)
    start = time.time()
    runner.train()
    minutes = (time.time() - start) / 60
    # RuntimeInfoHook keeps the last validation's metrics as 'val/<name>'.
    hub = runner.message_hub
    metrics = {k: hub.get_scalar('val/' + k).current() for k in METRICS}
    return dict(metrics, minutes=minutes)


def format_table(results: dict) -> str:
    header = '| loss | AP | AP50 | AP75 | D-ECE@0.5 (%) | train min |'
    lines = [header, '|' + '---|' * 6]
    for name, m in results.items():
        values = ' | '.join(f'{100 * m[k]:.1f}' for k in METRICS)
        lines.append(f"| {name} | {values} | {m['minutes']:.1f} |")
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    data_root = osp.abspath(osp.join(args.work_dir, 'data'))
    if not osp.isfile(
            osp.join(data_root, 'annotations', 'instances_val.json')):
        generate(
            data_root,
            args.num_train,
            args.num_val,
            seed=args.seed,
            formats=('coco', ))
    results = {}
    for name in args.losses:
        print(f'=== training with {name}: {ROWS[name]}', flush=True)
        results[name] = train_and_evaluate(name, data_root, args)
    table = format_table(results)
    print(f'\nCOCO bbox AP and D-ECE on {args.num_val} generated val images '
          f'({args.iters} iterations, CPU):\n{table}')
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(table + '\n')


if __name__ == '__main__':
    main()
