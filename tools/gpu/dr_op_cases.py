"""The DR op's forward and backward on CUDA over shapes that reach each of
its code paths, for compute-sanitizer (small: every path in a few
seconds) and, with ``--retinanet``, RetinaNet's 800x1333 size in float32
and float16 for ncu. Inputs are made on the CPU so that the GPU runs little
but the op. Exits non-zero if a result is not what the case expects.

    python tools/gpu/dr_op_cases.py [--retinanet]
"""
import argparse
import math

import torch

from mmdet_lossplug.ops import dr_expectation

LAM_POS, LAM_NEG = 1.0, 0.1 / math.log(3.5)
# name: (B, A, C, dtype, label weights?, NaN logit?)
CASES = {
    'RetinaNet-like chunks': (2, 3000, 80, torch.float32, True, False),
    'more than 256 chunks': (1, 220000, 80, torch.float32, True, False),
    'one class, no staging': (2, 40000, 1, torch.float32, True, False),
    'LVIS-like rows': (2, 300, 1203, torch.bfloat16, True, False),
    'two anchors a forward chunk': (1, 9, 32767, torch.bfloat16, True, False),
    'one anchor a chunk (both)': (1, 5, 32769, torch.float16, True, False),
    'fewer classes than a pack': (3, 101, 3, torch.float32, False, False),
    'float64': (2, 300, 7, torch.float64, True, False),
    'a NaN logit': (2, 3000, 80, torch.float32, True, True),
    'no classes': (2, 20, 0, torch.float32, True, False),
    'no anchors': (2, 0, 5, torch.float32, True, False),
}
RETINANET = {
    'RetinaNet float32': (2, 201600, 80, torch.float32, True, False),
    'RetinaNet float16': (2, 201600, 80, torch.float16, True, False),
}


def run_case(batch, anchors, classes, dtype, with_weights, nan, offset=0):
    """Forward + backward on CUDA; logits at ``offset`` elements past an
    aligned allocation. Returns (E-, E+, grad) on the CPU."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, anchors, classes, generator=g) * 3 - 2
    labels = torch.randint(0, classes + 1, (batch, anchors), generator=g)
    weights = (torch.rand(batch, anchors, generator=g) > 0.05).float()
    if nan:
        logits[1, 7, 3] = float('nan')
    flat = torch.empty(logits.numel() + offset, dtype=dtype, device='cuda')
    x = flat[offset:].view(logits.shape)
    x.copy_(logits)
    x.requires_grad_()
    e_neg, e_pos = dr_expectation(x, labels.cuda(),
                                  weights.cuda() if with_weights else None,
                                  LAM_POS, LAM_NEG, 'op')
    grad, = torch.autograd.grad((2 * e_neg - 3 * e_pos).sum(), x)
    torch.cuda.synchronize()
    return e_neg.cpu(), e_pos.cpu(), grad.cpu()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--retinanet', action='store_true')
    args = parser.parse_args()
    cases = RETINANET if args.retinanet else CASES
    failed = []
    for name, (batch, anchors, classes, dtype, weights, nan) in cases.items():
        offsets = (0, ) if args.retinanet else (0, 1)
        for offset in offsets:
            e_neg, e_pos, grad = run_case(batch, anchors, classes, dtype,
                                          weights, nan, offset)
            finite = torch.isfinite(torch.cat([e_neg, e_pos])).all()
            ok = (not finite) if nan else bool(finite)
            ok = ok and grad.shape == (batch, anchors, classes)
            print(
                f'{name}, offset {offset}: {"ok" if ok else "WRONG"} '
                f'(E- {e_neg.tolist()[:2]}, E+ {e_pos.tolist()[:2]})',
                flush=True)
            if not ok:
                failed.append(f'{name}, offset {offset}')
    if failed:
        raise SystemExit(f'unexpected results: {failed}')


if __name__ == '__main__':
    main()
