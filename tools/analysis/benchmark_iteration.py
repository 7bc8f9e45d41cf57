"""Time whole RetinaNet R50-FPN training iterations (data preprocessing,
forward, backward, SGD step) per classification loss on synthetic batches:
focal (MMDetection's FocalLoss, which runs mmcv's CUDA kernel on a GPU),
PolyFocal, DR through the compiled op and DR through the pure-PyTorch
reference; on CUDA each also with AMP (fp16 autocast, mmengine's
AmpOptimWrapper). Reports the median iteration time, its ratio to focal's,
and on CUDA the peak of ``torch.cuda.max_memory_allocated`` over the timed
iterations (weights, optimizer state and activations), and whether one more
iteration runs with the classification loss's forward under
``torch.cuda.set_sync_debug_mode('error')`` (a host sync there raises).

    python tools/analysis/benchmark_iteration.py [--device cuda]
        [--size 800 1333] [--batch 2] [--warmup 5] [--iters 20]
        [--losses focal polyfocal dr-op dr-reference] [--json FILE]
"""
import argparse
import json
import os.path as osp
import statistics
import time

import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import init_default_scope

import mmdet_lossplug  # noqa: F401  (registers our modules)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DR_CONFIG = 'configs/dr_loss/retinanet_r50_fpn_dr_1x_coco.py'
# loss name -> (config, DRLoss impl or None)
LOSSES = {
    'focal': ('configs/polyloss/retinanet_r50_fpn_focal_1x_coco.py', None),
    'polyfocal':
    ('configs/polyloss/retinanet_r50_fpn_polyfocal-g2.0-a0.25_1x_coco.py',
     None),
    'dr-op': (DR_CONFIG, 'op'),
    'dr-reference': (DR_CONFIG, 'reference'),
}


def build_model(loss: str, device: str):
    config, impl = LOSSES[loss]
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.model.backbone.init_cfg = None  # timing needs no pretrained weights
    if impl is not None:
        cfg.model.bbox_head.loss_cls.impl = impl
    init_default_scope('mmdet')
    torch.manual_seed(0)
    return MODELS.build(cfg.model).to(device).train()


def loss_forward_syncs(model, data, wrapper) -> str:
    """One more training iteration with every host sync inside the
    classification loss's forward an error: 'none', or the error. The rest
    of the iteration (mmdet's assigner, the logger) may sync as it likes."""
    loss_cls = model.bbox_head.loss_cls
    handles = [
        loss_cls.register_forward_pre_hook(
            lambda *_: torch.cuda.set_sync_debug_mode('error')),
        loss_cls.register_forward_hook(
            lambda *_: torch.cuda.set_sync_debug_mode('default'))
    ]
    try:
        model.train_step(data, wrapper)
        return 'none'
    except RuntimeError as error:
        return str(error).splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode('default')
        for handle in handles:
            handle.remove()


def time_iterations(loss, amp, args):
    """Median seconds per iteration, peak bytes and the loss forward's host
    syncs (None, None on CPU)."""
    cuda = args.device == 'cuda'
    model = build_model(loss, args.device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
    wrapper = (
        AmpOptimWrapper(optimizer=optimizer, dtype='float16')
        if amp else OptimWrapper(optimizer=optimizer))
    height, width = args.size
    data = demo_mm_inputs(
        batch_size=args.batch,
        image_shapes=[(3, height, width)] * args.batch,
        num_items=[args.boxes] * args.batch,
        num_classes=80)
    times = []
    for i in range(args.warmup + args.iters):
        if i == args.warmup and cuda:
            torch.cuda.reset_peak_memory_stats()
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.train_step(data, wrapper)
        if cuda:
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() if cuda else None
    syncs = loss_forward_syncs(model, data, wrapper) if cuda else None
    del model, optimizer, wrapper
    if cuda:
        torch.cuda.empty_cache()
    return statistics.median(times), peak, syncs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--size', type=int, nargs=2, default=[800, 1333])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument(
        '--boxes', type=int, default=8, help='ground-truth boxes per image')
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument(
        '--losses', nargs='+', choices=list(LOSSES), default=list(LOSSES))
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args(argv)
    # AMP's wrapper needs a GPU
    amps = [False, True] if args.device == 'cuda' else [False]
    device_name = (
        torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU')
    print(f'RetinaNet R50-FPN, batch {args.batch} at {args.size[0]}x'
          f'{args.size[1]}, {device_name}, torch {torch.__version__}; '
          f'median of {args.iters} iterations after {args.warmup}')
    print('| loss | AMP | iteration (ms) | vs focal | peak memory (MiB) '
          '| host syncs in loss_cls forward |')
    print('| --- | --- | --- | --- | --- | --- |')
    results = []
    for amp in amps:
        baseline = None
        for loss in args.losses:
            seconds, peak, syncs = time_iterations(loss, amp, args)
            baseline = baseline or (seconds if loss == 'focal' else None)
            ratio = f'{seconds / baseline:.3f}' if baseline else '-'
            peak_mib = f'{peak / 2**20:.0f}' if peak is not None else '-'
            print(f'| {loss} | {"fp16" if amp else "no"} | '
                  f'{seconds * 1e3:.1f} | {ratio} | {peak_mib} | '
                  f'{syncs or "-"} |')
            results.append(
                dict(
                    loss=loss,
                    amp=amp,
                    seconds=seconds,
                    peak_bytes=peak,
                    loss_cls_syncs=syncs))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    device=device_name,
                    torch=torch.__version__,
                    batch=args.batch,
                    size=args.size,
                    results=results),
                f,
                indent=1)


if __name__ == '__main__':
    main()
