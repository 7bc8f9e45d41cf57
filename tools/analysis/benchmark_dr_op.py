"""Benchmark DR loss's expectation op against its pure-PyTorch reference and
MMDetection's FocalLoss at RetinaNet sizes, side by side in one run.

Sizes: every anchor of RetinaNet's generator (9 per location, strides
8-128) for an image padded from 800x1333, 512x853 and 320x533; B = 2,
C = 80. For each implementation: median time of forward, backward and
both, and peak memory beyond the inputs (in units of the gradient's size);
ratios are printed from the same run. On CUDA also the bandwidth reached by
forward + backward (it must read the logits twice and write the gradient
once) against a device copy measured in the same run.

    python tools/analysis/benchmark_dr_op.py [--device cpu|cuda]
        [--repeat 5] [--sizes 800 512 320] [--dtype float32]

CPU peak memory is the growth of a fresh process's resident high-water mark
(VmHWM) over one forward + backward, the inputs already made; CUDA uses
``torch.cuda.max_memory_allocated``.
"""
import argparse
import json
import math
import os.path as osp
import statistics
import subprocess
import sys
import time

import torch

IMPLS = ('op', 'reference', 'focal')
SHORT_SIDES = {800: (800, 1333), 512: (512, 853), 320: (320, 533)}
STRIDES = (8, 16, 32, 64, 128)
LAM_POS, LAM_NEG = 1.0, 0.1 / math.log(3.5)


def retinanet_anchors(height: int, width: int) -> int:
    """Anchors of RetinaNet's generator for an image padded to 32."""
    height, width = (math.ceil(s / 32) * 32 for s in (height, width))
    return 9 * sum(
        math.ceil(height / s) * math.ceil(width / s) for s in STRIDES)


def make_inputs(anchors, device, dtype, batch=2, classes=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    # In place: no temporaries, so a process's peak memory before the loss
    # runs is the inputs'.
    logits = torch.empty(batch, anchors, classes).normal_(-4, 2, generator=g)
    labels = torch.full((batch, anchors), classes, dtype=torch.long)
    pos = torch.rand(batch, anchors, generator=g) < 0.001  # ~100 per image
    labels[pos] = torch.randint(0, classes, (int(pos.sum()), ), generator=g)
    weights = (torch.rand(batch, anchors, generator=g) > 0.02).float()
    return (logits.to(device, dtype), labels.to(device), weights.to(device))


def build_step(impl):
    """A function (logits, labels, weights) -> scalar loss."""
    if impl == 'focal':
        from mmdet.models.losses import FocalLoss
        focal = FocalLoss(use_sigmoid=True, gamma=2.0, alpha=0.25)

        def step(x, labels, weights):
            c = x.size(-1)
            return focal(
                x.reshape(-1, c),
                labels.reshape(-1),
                weights.reshape(-1),
                avg_factor=max(int((labels < c).sum()), 1))

        return step
    from mmdet_lossplug.ops import dr_expectation_op, dr_expectation_reference
    fn = dr_expectation_op if impl == 'op' else dr_expectation_reference

    def step(x, labels, weights):
        e_neg, e_pos = fn(x, labels, weights, LAM_POS, LAM_NEG)
        return (e_neg - e_pos).sum()

    return step


def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def timed(fn, device, repeat):
    times = []
    for _ in range(repeat + 1):  # the first run warms up
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def measure(impl, size, device, dtype, repeat):
    """Times (s) and peak extra memory (bytes) of one implementation."""
    logits, labels, weights = make_inputs(
        retinanet_anchors(*SHORT_SIDES[size]), device, dtype)
    step = build_step(impl)
    x = logits.requires_grad_()

    def forward():
        return step(x, labels, weights)

    def both():
        x.grad = None
        forward().backward()

    result = dict(
        forward=timed(forward, device, repeat),
        both=timed(both, device, repeat))
    result['backward'] = result['both'] - result['forward']
    x.grad = None
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        both()
        result['peak_extra'] = torch.cuda.max_memory_allocated() - base
    else:
        result['peak_extra'] = None  # cpu_peak_extra, in a fresh process
    result['grad_bytes'] = x.numel() * x.element_size()
    return result


def peak_rss_bytes() -> int:
    """This process's resident-memory high-water mark (Linux VmHWM; unlike
    ru_maxrss it starts afresh at exec, not at the parent's peak)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise RuntimeError('no VmHWM in /proc/self/status')


def cpu_peak_extra(impl, size, dtype) -> int:
    """Peak RSS growth of one forward+backward in a fresh process."""
    code = ('import torch; from benchmark_dr_op import *;'
            f'l, t, w = make_inputs(retinanet_anchors(*SHORT_SIDES[{size}]),'
            f' "cpu", torch.{dtype});'
            f'step = build_step("{impl}"); x = l.requires_grad_();'
            'base = peak_rss_bytes(); step(x, t, w).backward();'
            'print(peak_rss_bytes() - base)')
    out = subprocess.run([sys.executable, '-c', code],
                         cwd=osp.dirname(osp.abspath(__file__)),
                         capture_output=True,
                         text=True,
                         check=True)
    return int(out.stdout.strip().splitlines()[-1])


def copy_bandwidth(device, nbytes=1 << 30):
    """Device-to-device copy bandwidth (bytes/s): read + write."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src), device, 10)
    return 2 * nbytes / seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument(
        '--sizes',
        type=int,
        nargs='+',
        default=[800, 512, 320],
        choices=list(SHORT_SIDES))
    parser.add_argument(
        '--dtype',
        default='float32',
        choices=['float32', 'float16', 'bfloat16'])
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    device_name = (
        torch.cuda.get_device_name() if args.device == 'cuda' else
        f'CPU, {torch.get_num_threads()} threads')
    print(f'# DR expectation op benchmark: {device_name}, torch '
          f'{torch.__version__}, B=2, C=80, {args.dtype}, median of '
          f'{args.repeat}')
    bandwidth = copy_bandwidth(args.device) if args.device == 'cuda' else None
    if bandwidth:
        print(f'# device copy bandwidth: {bandwidth / 1e9:.0f} GB/s')
    rows = []
    for size in args.sizes:
        anchors = retinanet_anchors(*SHORT_SIDES[size])
        res = {
            impl: measure(impl, size, args.device, dtype, args.repeat)
            for impl in IMPLS
        }
        if args.device == 'cpu':
            for impl in IMPLS:
                res[impl]['peak_extra'] = cpu_peak_extra(
                    impl, size, args.dtype)
        rows.append(dict(size=size, anchors=anchors, results=res))
        print(f'\n## {SHORT_SIDES[size][0]}x{SHORT_SIDES[size][1]}: '
              f'A = {anchors} anchors per image')
        print('| impl | forward ms | backward ms | both ms | '
              'peak extra / grad |')
        print('|---|---|---|---|---|')
        for impl in IMPLS:
            r = res[impl]
            print(f"| {impl} | {1e3 * r['forward']:.2f} | "
                  f"{1e3 * r['backward']:.2f} | {1e3 * r['both']:.2f} | "
                  f"{r['peak_extra'] / r['grad_bytes']:.2f} |")
        op, ref, focal = (res[i] for i in IMPLS)
        print(f"ratios (both): reference / op = "
              f"{ref['both'] / op['both']:.1f}x, focal / op = "
              f"{focal['both'] / op['both']:.2f}x; forward: reference / op "
              f"= {ref['forward'] / op['forward']:.1f}x")
        if bandwidth:
            moved = 3 * op['grad_bytes']  # read logits twice, write grad
            reached = moved / op['both']
            print(f'op forward+backward: {reached / 1e9:.0f} GB/s = '
                  f'{100 * reached / bandwidth:.0f} % of copy bandwidth')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    device=device_name,
                    dtype=args.dtype,
                    copy_bandwidth=bandwidth,
                    rows=rows),
                f,
                indent=1)


if __name__ == '__main__':
    main()
