"""Benchmark DR loss's expectation op against its pure-PyTorch reference at
RetinaNet's 800x1333 size, side by side in one run.

Every anchor of RetinaNet's generator (9 per location, strides 8-128) for
an image padded from 800x1333 (A = 201,600), C = 80, for each batch size
and logits dtype: median time of the op's forward and forward + backward,
the reference's forward + backward and the ratio; each one's peak memory
beyond the inputs in units of the gradient's size; and the bandwidth the op
reaches (forward + backward must read the logits twice, write the gradient
once and read labels and weights twice) against a copy on the same device,
measured in the same run.

    python tools/analysis/benchmark_dr_op.py [--device cpu|cuda]
        [--batches 2 8] [--dtypes float32 float16 bfloat16] [--repeat 5]

CPU peak memory is the growth of a fresh process's resident high-water mark
(VmHWM) over one forward + backward, the inputs already made; CUDA uses
``torch.cuda.max_memory_allocated``.

With ``--kernels`` (CUDA), instead: the op's kernels alone (the two
operators called directly, forward then backward, ``--iters`` times between
two CUDA events) beside the whole call (the entry point and autograd, timed
the same way) and a device-to-device copy timed the same way, for each
batch, dtype and ``--classes``; the bandwidth counts the fewest bytes
(logits read twice, the gradient written, labels and weights read twice).

    python tools/analysis/benchmark_dr_op.py --device cuda --kernels \
        [--batches 2 8] [--dtypes float32 bfloat16] [--classes 80 1]
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

IMPLS = ('op', 'reference')
HEIGHT, WIDTH = 800, 1333
STRIDES = (8, 16, 32, 64, 128)
LAM_POS, LAM_NEG = 1.0, 0.1 / math.log(3.5)


def retinanet_anchors(height: int = HEIGHT, width: int = WIDTH) -> int:
    """Anchors of RetinaNet's generator for an image padded to 32."""
    height, width = (math.ceil(s / 32) * 32 for s in (height, width))
    return 9 * sum(
        math.ceil(height / s) * math.ceil(width / s) for s in STRIDES)


def make_inputs(batch, device, dtype, classes=80, seed=0):
    anchors = retinanet_anchors()
    g = torch.Generator().manual_seed(seed)
    # In place, in the final dtype: no temporary larger than the inputs, so
    # a process's peak memory before the loss runs is the inputs'.
    logits = torch.empty(
        batch, anchors, classes, dtype=dtype).normal_(
            -4, 2, generator=g)
    labels = torch.full((batch, anchors), classes, dtype=torch.long)
    pos = torch.rand(batch, anchors, generator=g) < 0.001  # ~200 per image
    labels[pos] = torch.randint(0, classes, (int(pos.sum()), ), generator=g)
    weights = (torch.rand(batch, anchors, generator=g) > 0.02).float()
    return logits.to(device), labels.to(device), weights.to(device)


def build_step(impl):
    """A function (logits, labels, weights) -> scalar loss."""
    from mmdet_lossplug.ops import dr_expectation

    def step(x, labels, weights):
        e_neg, e_pos = dr_expectation(x, labels, weights, LAM_POS, LAM_NEG,
                                      impl)
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


def measure(impl, batch, device, dtype, repeat):
    """Times (s) and, on CUDA, peak extra memory (bytes) of one impl."""
    logits, labels, weights = make_inputs(batch, device, dtype)
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
    x.grad = None
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        both()
        result['peak_extra'] = torch.cuda.max_memory_allocated() - base
    else:
        result['peak_extra'] = cpu_peak_extra(impl, batch, dtype)
    result['grad_bytes'] = x.numel() * x.element_size()
    # The fewest bytes forward + backward can move: the logits read by
    # each (the backward needs the forward's statistics), the gradient
    # written once, labels (int64) and weights (float32) read by each.
    result['min_bytes'] = 3 * result['grad_bytes'] + 2 * labels.numel() * (
        labels.element_size() + weights.element_size())
    return result


def peak_rss_bytes() -> int:
    """This process's resident-memory high-water mark (Linux VmHWM; unlike
    ru_maxrss it starts afresh at exec, not at the parent's peak)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise RuntimeError('no VmHWM in /proc/self/status')


def cpu_peak_extra(impl, batch, dtype) -> int:
    """Peak RSS growth of one forward+backward in a fresh process."""
    code = ('import torch; from benchmark_dr_op import *;'
            f'l, t, w = make_inputs({batch}, "cpu", {dtype});'
            f'step = build_step("{impl}"); x = l.requires_grad_();'
            'base = peak_rss_bytes(); step(x, t, w).backward();'
            'print(peak_rss_bytes() - base)')
    out = subprocess.run([sys.executable, '-c', code],
                         cwd=osp.dirname(osp.abspath(__file__)),
                         capture_output=True,
                         text=True,
                         check=True)
    return int(out.stdout.strip().splitlines()[-1])


def copy_bandwidth(device, nbytes=1 << 28):
    """Copy bandwidth (bytes/s, read + write) of one tensor into another
    already allocated: the bound of a pass that reads and writes memory."""
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src), device, 10)
    return 2 * nbytes / seconds


def event_ms(fn, iters):
    """Milliseconds per call of ``fn``, ``iters`` calls between two CUDA
    events, after one warm-up call (no host sync inside)."""
    fn()
    start, stop = (torch.cuda.Event(enable_timing=True) for _ in range(2))
    start.record()
    for _ in range(iters):
        fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / iters


def kernel_rows(batches, dtypes, classes_list, iters):
    """One row a (B, dtype, C): kernels-only and whole-call ms, bandwidth
    against a copy timed the same way."""
    from mmdet_lossplug.ops import dr_expectation
    op = torch.ops.mmdet_lossplug
    src = torch.ones(1 << 28, dtype=torch.uint8, device='cuda')
    dst = torch.empty_like(src)
    copy = 2 * src.numel() / (event_ms(lambda: dst.copy_(src), iters) / 1e3)
    print(f'# copy bandwidth (read + write, CUDA events): {copy / 1e9:.0f} '
          'GB/s')
    print('| B | dtype | C | kernels fwd+bwd ms | whole call fwd+bwd ms | '
          'kernels GB/s | kernels % of copy | whole call % of copy |')
    print('|---|---|---|---|---|---|---|---|')
    for batch in batches:
        for name in dtypes:
            for classes in classes_list:
                x, labels, weights = make_inputs(batch, 'cuda',
                                                 getattr(torch, name), classes)
                g = torch.ones(batch, device='cuda')

                def kernels():
                    _, _, stats, _ = op.dr_expectation(x, labels, weights,
                                                       LAM_POS, LAM_NEG)
                    op.dr_expectation_backward(g, g, x, labels, weights, stats,
                                               LAM_POS, LAM_NEG)

                xg = x.detach().requires_grad_()

                def whole():
                    e_neg, e_pos = dr_expectation(xg, labels, weights, LAM_POS,
                                                  LAM_NEG, 'op')
                    torch.autograd.grad([e_neg, e_pos], xg, [g, g])

                fewest = 3 * x.numel() * x.element_size() + 2 * labels.numel(
                ) * (
                    labels.element_size() + weights.element_size())
                k_ms, w_ms = event_ms(kernels, iters), event_ms(whole, iters)
                reached = fewest / (k_ms / 1e3)
                print(
                    f'| {batch} | {name} | {classes} | {k_ms:.3f} | '
                    f'{w_ms:.3f} | {reached / 1e9:.0f} | '
                    f'{100 * reached / copy:.0f} % | '
                    f'{100 * fewest / (w_ms / 1e3) / copy:.0f} % |',
                    flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--batches', type=int, nargs='+', default=[2, 8])
    parser.add_argument(
        '--dtypes',
        nargs='+',
        default=['float32', 'float16', 'bfloat16'],
        choices=['float32', 'float16', 'bfloat16', 'float64'])
    parser.add_argument('--json', help='also write the results here')
    parser.add_argument(
        '--kernels',
        action='store_true',
        help='CUDA: kernels alone vs the whole call, CUDA events')
    parser.add_argument('--classes', type=int, nargs='+', default=[80, 1])
    parser.add_argument('--iters', type=int, default=50)
    args = parser.parse_args(argv)
    if args.kernels:
        print(f'# DR op kernels: {torch.cuda.get_device_name()}, torch '
              f'{torch.__version__}, {HEIGHT}x{WIDTH} (A = '
              f'{retinanet_anchors()}), {args.iters} calls between events')
        kernel_rows(args.batches, args.dtypes, args.classes, args.iters)
        return
    device_name = (
        torch.cuda.get_device_name() if args.device == 'cuda' else
        f'CPU, {torch.get_num_threads()} threads')
    bandwidth = copy_bandwidth(args.device)
    print(f'# DR expectation op benchmark: {device_name}, torch '
          f'{torch.__version__}, {HEIGHT}x{WIDTH} (A = {retinanet_anchors()}'
          f'), C = 80, median of {args.repeat}')
    print(f'# copy bandwidth (read + write): {bandwidth / 1e9:.1f} GB/s')
    print('| B | dtype | op fwd ms | op fwd+bwd ms | reference fwd+bwd ms | '
          'reference / op | op peak extra / grad | reference peak extra / '
          'grad | op GB/s | % of copy bandwidth |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    rows = []
    for batch in args.batches:
        for name in args.dtypes:
            dtype = getattr(torch, name)
            op, ref = (
                measure(impl, batch, args.device, dtype, args.repeat)
                for impl in IMPLS)
            reached = op['min_bytes'] / op['both']
            row = dict(
                batch=batch,
                dtype=name,
                op=op,
                reference=ref,
                ratio=ref['both'] / op['both'],
                bandwidth=reached,
                bandwidth_share=reached / bandwidth)
            rows.append(row)
            print(
                f"| {batch} | {name} | {1e3 * op['forward']:.2f} | "
                f"{1e3 * op['both']:.2f} | {1e3 * ref['both']:.1f} | "
                f"{row['ratio']:.1f}x | "
                f"{op['peak_extra'] / op['grad_bytes']:.2f} | "
                f"{ref['peak_extra'] / ref['grad_bytes']:.2f} | "
                f'{reached / 1e9:.1f} | {100 * reached / bandwidth:.0f} % |',
                flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    device=device_name,
                    copy_bandwidth=bandwidth,
                    torch=torch.__version__,
                    rows=rows),
                f,
                indent=1)


if __name__ == '__main__':
    main()
