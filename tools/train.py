"""Train a detector from a config: MMDetection's training CLI, with
mmdet_lossplug registered and CPU-distributed training (gloo) working.

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse

import launch_utils  # tools/, the script's folder, is first on sys.path
from mmengine.config import Config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='dir for logs and checkpoints')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by actual / base batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or the latest in the work dir')
    return launch_utils.parse_launch_args(parser, argv)


def build_config(args) -> Config:
    cfg = Config.fromfile(args.config)
    launch_utils.prepare_launch(cfg, args)
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print('AMP is already enabled in the config')
        else:
            assert optim_wrapper == 'OptimWrapper', (
                '--amp needs an OptimWrapper, got ' + optim_wrapper)
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in \
                cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr.'
                               'base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    runner = launch_utils.build_runner(cfg)
    runner.train()
    launch_utils.finish_launch()


if __name__ == '__main__':
    main()
