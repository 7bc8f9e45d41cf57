"""Evaluate a checkpoint: MMDetection's testing CLI with mmdet_lossplug
registered.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse

import launch_utils  # tools/, the script's folder, is first on sys.path
from mmdet.evaluation import DumpDetResults
from mmengine.config import Config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='dir for evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to this pickle file for offline evaluation '
        '(and tools/calibrate.py)')
    return launch_utils.parse_launch_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    launch_utils.prepare_launch(cfg, args)
    cfg.load_from = args.checkpoint
    runner = launch_utils.build_runner(cfg)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {args.out}')
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    metrics = runner.test()
    launch_utils.finish_launch()
    return metrics


if __name__ == '__main__':
    main()
