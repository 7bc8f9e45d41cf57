"""The CUDA kernels on every path they have, against the float64 reference
on the CPU (skipped without a GPU; run by the GPU command's step a):
more than 256 forward chunks per image (the per-thread serial merge of
image_stats_kernel), one and two anchors a chunk, C = 1 (no
staging), LVIS-like rows with ignored anchors, empty shapes, logits at an
odd offset (scalar head/tail; the gradient at the same offset), a side
stream, bitwise repeatability, RetinaNet's scale, bad labels as device
asserts, and the kernels launched per call."""
import math
import os
import subprocess
import sys
from functools import partial

import pytest
import torch

from mmdet_lossplug.ops import (HAS_EXT, dr_expectation,
                                dr_expectation_reference)
from ..helpers import ROOT

pytestmark = pytest.mark.skipif(
    not (HAS_EXT and torch.cuda.is_available()), reason='needs a GPU')
dr_expectation_op = partial(dr_expectation, impl='op')
LAM_POS, LAM_NEG = 1.0, 0.1 / math.log(3.5)
TOL = {
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float16: dict(rtol=1e-3, atol=1e-5),
    torch.bfloat16: dict(rtol=1e-2, atol=1e-4),
}


def make_case(batch, anchors, classes, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, anchors, classes, generator=g) * 3 - 2
    labels = torch.randint(0, classes + 1, (batch, anchors), generator=g)
    labels[torch.rand(batch, anchors, generator=g) < 0.8] = classes
    weights = (torch.rand(batch, anchors, generator=g) > 0.05).float()
    return logits, labels, weights


def op_on_cuda(logits, labels, weights, dtype):
    """(E-, E+) and d(2 E- - 3 E+)/d logits from the CUDA op, on the CPU."""
    x = logits.to('cuda', dtype).requires_grad_()
    e_neg, e_pos = dr_expectation_op(x, labels.cuda(), weights.cuda(), LAM_POS,
                                     LAM_NEG)
    grad, = torch.autograd.grad((2 * e_neg - 3 * e_pos).sum(), x)
    return e_neg.cpu(), e_pos.cpu(), grad.cpu()


def reference_on_cpu(logits, labels, weights, dtype):
    """The same from the reference in float64, given the values the op
    saw (rounded to dtype)."""
    x = logits.to(dtype).double().requires_grad_()
    e_neg, e_pos = dr_expectation_reference(x, labels, weights, LAM_POS,
                                            LAM_NEG)
    grad, = torch.autograd.grad((2 * e_neg - 3 * e_pos).sum(), x)
    return e_neg, e_pos, grad


def assert_matches_reference(logits, labels, weights, dtype):
    got = op_on_cuda(logits, labels, weights, dtype)
    want = reference_on_cpu(logits, labels, weights, dtype)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w, **TOL[dtype])


@pytest.mark.parametrize('dtype', list(TOL))
@pytest.mark.parametrize(
    'shape',
    [
        (1, 220000, 80),  # 269 forward chunks per image: the serial merge
        (1, 9, 16383),  # two anchors a backward chunk (four a forward one)
        (1, 5, 16385),  # one anchor a backward chunk (three a forward one)
        (1, 5, 32767),  # two anchors a forward chunk
        (1, 3, 32769),  # one anchor a forward chunk
        (2, 3, 32768),
        (1, 70000, 1),  # C = 1: 2 forward, 3 backward chunks, none staged
        (1, 20000, 2),  # 5 chunks of 4096 staged anchors (the cap)
        (2, 300, 1203),  # LVIS-like rows, ignored ones zeroed by a warp
        (3, 101, 3),  # fewer classes than a 16-byte pack
    ])
def test_cuda_op_matches_float64_reference(shape, dtype):
    assert_matches_reference(*make_case(*shape), dtype)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_cuda_op_at_an_odd_offset(dtype):
    """Logits starting 1 element past a 16-byte boundary: a scalar head
    in the forward and the backward, whose gradient is allocated at the
    same offset, so that the body is 16-byte packs."""
    logits, labels, weights = make_case(2, 700, 13)
    flat = torch.empty(logits.numel() + 1, dtype=dtype, device='cuda')
    shifted = flat[1:].view(logits.shape)
    shifted.copy_(logits)
    assert shifted.data_ptr() % 16 != 0
    x = shifted.requires_grad_()
    e_neg, e_pos = dr_expectation_op(x, labels.cuda(), weights.cuda(), LAM_POS,
                                     LAM_NEG)
    grad, = torch.autograd.grad((2 * e_neg - 3 * e_pos).sum(), x)
    # Allocated at the logits' offset: the backward's 16-byte packs.
    assert grad.data_ptr() % 16 == shifted.data_ptr() % 16
    want = reference_on_cpu(logits, labels, weights, dtype)
    for g, w in zip((e_neg, e_pos, grad), want):
        torch.testing.assert_close(g.cpu().double(), w, **TOL[dtype])


@pytest.mark.parametrize('shape', [(0, 10, 5), (2, 0, 5), (2, 10, 0)])
def test_cuda_op_on_empty_shapes(shape):
    logits = torch.zeros(shape, device='cuda', requires_grad=True)
    labels = torch.zeros(shape[:2], dtype=torch.long, device='cuda')
    e_neg, e_pos = dr_expectation_op(logits, labels, None, 1.0, 0.1)
    assert e_neg.tolist() == [0.0] * shape[0]
    assert e_pos.tolist() == [1.0] * shape[0]
    (e_neg + e_pos).sum().backward()
    assert logits.grad.shape == shape


def expectations_and_grad(logits, labels, weights):
    """(E-, E+) and d(E- - E+)/d logits from the op, where logits are."""
    x = logits.clone().requires_grad_()
    e_neg, e_pos = dr_expectation_op(x, labels, weights, LAM_POS, LAM_NEG)
    grad, = torch.autograd.grad((e_neg - e_pos).sum(), x)
    return e_neg, e_pos, grad


def test_cuda_op_on_a_side_stream_equals_the_default_stream():
    logits, labels, weights = (t.cuda() for t in make_case(2, 5000, 80))
    want = expectations_and_grad(logits, labels, weights)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        got = expectations_and_grad(logits, labels, weights)
    torch.cuda.current_stream().wait_stream(stream)
    for a, b in zip(got, want):
        assert torch.equal(a, b)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_cuda_op_is_bitwise_repeatable(dtype):
    logits, labels, weights = make_case(2, 201600 // 4, 80)
    runs = [op_on_cuda(logits, labels, weights, dtype) for _ in range(3)]
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            assert torch.equal(a, b)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_cuda_op_at_retinanet_scale_against_float64(dtype):
    """800x1333: 201,600 anchors x 80 classes (247 forward chunks per image,
    493 backward ones): no
    worse than torch's own float32 reference against float64."""
    logits, labels, weights = make_case(2, 201600, 80)
    x = logits.to(dtype)
    exact = dr_expectation_reference(x.double(), labels, weights, LAM_POS,
                                     LAM_NEG)
    op = dr_expectation_op(x.cuda(), labels.cuda(), weights.cuda(), LAM_POS,
                           LAM_NEG)
    ref = dr_expectation_reference(x.float(), labels, weights, LAM_POS,
                                   LAM_NEG)
    for o, r, e in zip(op, ref, exact):
        ulp = torch.finfo(torch.float32).eps * e.abs().max()
        assert (o.cpu().double() - e).abs().max() <= max(
            4 * (r.double() - e).abs().max(), 4 * ulp)


def test_cuda_op_equals_cpu_op():
    """The two kernels sum in different orders: equal to rounding."""
    logits, labels, weights = make_case(2, 20000, 80)
    cpu = expectations_and_grad(logits, labels, weights)
    cuda = expectations_and_grad(logits.cuda(), labels.cuda(), weights.cuda())
    for a, b in zip(cpu, cuda):
        torch.testing.assert_close(a, b.cpu(), **TOL[torch.float32])


def test_cuda_bad_label_is_a_device_assert_or_eager_error():
    """A label outside [0, C] is an error on CUDA too: a device-side assert
    at the next sync (in a subprocess: it ends the CUDA context), or, with
    MMDET_LOSSPLUG_EAGER_CHECKS=1, a ValueError at once."""
    code = ('import torch\n'
            'from mmdet_lossplug.ops import dr_expectation\n'
            'x = torch.randn(2, 50, 4, device="cuda")\n'
            'labels = torch.full((2, 50), 4, device="cuda")\n'
            'labels[1, 3] = 9\n'
            'e_neg, _ = dr_expectation(x, labels, None, 1.0, 0.1, "op")\n'
            'torch.cuda.synchronize()\n')
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop('MMDET_LOSSPLUG_EAGER_CHECKS', None)
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode != 0 and 'assert' in proc.stderr, proc.stderr
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=ROOT,
                          env=dict(env, MMDET_LOSSPLUG_EAGER_CHECKS='1'),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert 'ValueError: dr_expectation: a label outside [0, 4]' in \
        proc.stderr, proc.stderr


def test_cuda_launches_per_call():
    """The kernels one forward + backward of the entry point launches, as
    the CUDA profiler sees them: the forward's two and the assert on its
    status flag, the backward's one (test_dr_op_launches.py counts the
    same without a GPU)."""
    logits, labels, weights = make_case(2, 3000, 80)
    x = logits.cuda().requires_grad_()
    labels, weights = labels.cuda(), weights.cuda()
    grads = [torch.ones(2, device='cuda'), torch.ones(2, device='cuda')]
    for profiling in (False, True):  # the first call warms up
        with torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CUDA
                            ]) if profiling else torch.no_grad() as prof:
            with torch.enable_grad():
                e_neg, e_pos = dr_expectation_op(x, labels, weights, LAM_POS,
                                                 LAM_NEG)
                torch.autograd.grad([e_neg, e_pos], x, grads)
            torch.cuda.synchronize()
    kernels = [
        e.name for e in prof.events()
        if e.device_type == torch.autograd.DeviceType.CUDA
    ]
    assert len(kernels) == 4, kernels
    assert sum('chunk_sums_kernel' in k for k in kernels) == 1, kernels
    assert sum('image_stats_kernel' in k for k in kernels) == 1, kernels
    assert sum('grad_kernel' in k for k in kernels) == 1, kernels
