"""The compiled op against the pure-PyTorch reference, forward and backward,
over devices, dtypes, shapes and contiguity; gradcheck; determinism; the
CUDA kernel file compiles with plain nvcc."""
import importlib
import math
import os.path as osp
import shutil
import subprocess
import warnings
from functools import partial

import pytest
import torch

from mmdet_lossplug.ops import (HAS_EXT, dr_expectation,
                                dr_expectation_reference)
from ..helpers import DEVICES, ROOT

# The module, not the function of the same name that ops/__init__ exports.
dr_module = importlib.import_module('mmdet_lossplug.ops.dr_expectation')
dr_expectation_op = partial(dr_expectation, impl='op')

pytestmark = pytest.mark.skipif(
    not HAS_EXT, reason='mmdet_lossplug._ext is not built')


def dr_loss(**kwargs):
    """DRLoss is an MMDetection module: its cases skip where mmdet is absent
    (the op's CUDA-build test environment, Makefile target cuda-build)."""
    pytest.importorskip('mmdet')
    from mmdet_lossplug.models.losses import DRLoss
    return DRLoss(**kwargs)


LAM_POS, LAM_NEG = 1.0, 0.1 / math.log(3.5)
# Tolerances on (E-, E+) and on the gradient, per logits dtype: both sides
# accumulate in fp32 (fp64); a fp16/bf16 gradient is rounded once.
TOL = {
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float16: dict(rtol=1e-3, atol=1e-5),
    torch.bfloat16: dict(rtol=1e-2, atol=1e-4),
}


def make_case(batch, anchors, classes, dtype, device, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(batch, anchors, classes, generator=g) * scale)
    labels = torch.randint(0, classes + 1, (batch, anchors), generator=g)
    background = torch.rand(batch, anchors, generator=g) < 0.7
    labels[background] = classes
    weights = (torch.rand(batch, anchors, generator=g) > 0.1).float()
    return (logits.to(device, dtype), labels.to(device), weights.to(device))


def compare(logits, labels, weights, lam_pos=LAM_POS, lam_neg=LAM_NEG):
    """Op vs reference: (E-, E+) and d(2 E- + 3 E+)/d logits."""
    x_op = logits.detach().clone().requires_grad_()
    x_ref = logits.detach().clone().requires_grad_()
    op = dr_expectation_op(x_op, labels, weights, lam_pos, lam_neg)
    ref = dr_expectation_reference(x_ref, labels, weights, lam_pos, lam_neg)
    tol = TOL[logits.dtype]
    for a, b in zip(op, ref):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, **tol)
    (2 * op[0] + 3 * op[1]).sum().backward()
    (2 * ref[0] + 3 * ref[1]).sum().backward()
    assert x_op.grad.dtype == logits.dtype
    torch.testing.assert_close(x_op.grad, x_ref.grad, **tol)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', list(TOL))
@pytest.mark.parametrize('shape', [(1, 1, 1), (2, 1237, 7), (3, 130, 80),
                                   (1, 20000, 1)])
def test_op_matches_reference(device, dtype, shape):
    compare(*make_case(*shape, dtype, device))


@pytest.mark.parametrize('device', DEVICES)
def test_op_degenerate_images(device):
    logits, labels, weights = make_case(4, 300, 5, torch.float32, device)
    labels[0] = 5  # no positives
    weights[1] = 0  # every anchor ignored
    labels[2] = 0  # every anchor positive for class 0
    compare(logits, labels, weights)
    e_neg, e_pos = dr_expectation_op(logits, labels, weights, 1.0, 0.1)
    assert e_pos[0] == 1 and e_pos[1] == 1 and e_neg[1] == 0
    compare(logits, labels, None)  # label_weights omitted


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_op_extreme_logits(device, dtype):
    logits, labels, weights = make_case(2, 500, 10, torch.float32, device)
    compare((logits.sign() * 50).to(dtype), labels, weights)
    compare(logits.to(dtype), labels, weights, lam_pos=0.05, lam_neg=1 / 80)


@pytest.mark.parametrize('device', DEVICES)
def test_op_non_contiguous_inputs(device):
    logits, labels, weights = make_case(2, 400, 12, torch.float32, device)
    strided = (logits.transpose(0, 1).contiguous().transpose(0, 1),
               labels.t().contiguous().t(), weights.t().contiguous().t())
    assert not any(t.is_contiguous() for t in strided)
    compare(*strided)
    compare(logits[:, ::2, 1:], labels[:, ::2].clamp(max=11), weights[:, ::2])


def test_op_accumulates_as_accurately_as_the_reference():
    """Chunked, leaf-then-tree summation: no worse than torch's pairwise
    fp32 sums against float64, on a RetinaNet-sized image."""
    logits, labels, weights = make_case(1, 60000, 80, torch.float32, 'cpu')
    exact = dr_expectation_reference(logits.double(), labels, weights, LAM_POS,
                                     LAM_NEG)
    op = dr_expectation_op(logits, labels, weights, LAM_POS, LAM_NEG)
    ref = dr_expectation_reference(logits, labels, weights, LAM_POS, LAM_NEG)
    for o, r, e in zip(op, ref, exact):
        ulp = torch.finfo(torch.float32).eps * e.abs().max()
        assert (o.double() - e).abs().max() <= max(
            4 * (r.double() - e).abs().max(), 4 * ulp)


@pytest.mark.parametrize('seed', range(3))
def test_op_gradcheck(seed):
    logits, labels, weights = make_case(2, 9, 3, torch.float64, 'cpu', seed)
    logits.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: dr_expectation_op(x, labels, weights, 0.7, 0.2), (logits, ))


@pytest.mark.parametrize('device', DEVICES)
def test_op_is_deterministic(device):
    logits, labels, weights = make_case(2, 30000, 20, torch.float32, device)
    runs = []
    for _ in range(2):
        x = logits.clone().requires_grad_()
        e_neg, e_pos = dr_expectation_op(x, labels, weights, LAM_POS, LAM_NEG)
        (e_neg - e_pos).sum().backward()
        runs.append((e_neg, e_pos, x.grad))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


@pytest.mark.parametrize('pool', ['image', 'batch'])
@pytest.mark.parametrize('pair', ['dr', 'neg_only'])
def test_dr_loss_through_op_equals_reference(pool, pair):
    logits, labels, weights = make_case(2, 2000, 20, torch.float32, 'cpu')
    grads = []
    values = []
    for impl in ('op', 'reference'):
        x = logits.clone().requires_grad_()
        loss = dr_loss(impl=impl, pool=pool, pair=pair)(x, labels, weights)
        loss.backward()
        values.append(loss)
        grads.append(x.grad)
    torch.testing.assert_close(values[0], values[1])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-8)


def test_auto_uses_op_and_falls_back_with_one_warning(monkeypatch):
    assert dr_loss().impl == 'auto'
    logits, labels, weights = make_case(1, 50, 3, torch.float32, 'cpu')
    e_neg, _ = dr_expectation(logits.requires_grad_(), labels, weights, 1.,
                              0.1)
    # the operator's autograd: torch.library's, or its Autograd kernel's
    # Function before torch 2.4
    op_grad_fns = ('mmdet_lossplug_dr_expectation', 'DRExpectationAutograd')
    assert any(name in type(e_neg.grad_fn).__name__ for name in op_grad_fns)
    monkeypatch.setattr(dr_module, 'HAS_EXT', False)
    monkeypatch.setattr(dr_module, '_warned_fallback', set())
    with pytest.warns(UserWarning, match='pure-PyTorch reference'):
        e_neg, _ = dr_expectation(logits, labels, weights, 1., 0.1)
    assert not any(
        name in type(e_neg.grad_fn).__name__ for name in op_grad_fns)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        dr_expectation(logits, labels, weights, 1., 0.1)  # warned once
    with pytest.raises(RuntimeError, match='not built'):
        dr_expectation_op(logits, labels, weights, 1., 0.1)


@pytest.mark.parametrize('lam', [1e-3, 1 / 200, 1e-30])
def test_small_lambda_runs_the_op(lam):
    """Any lambda the check accepts: the op, not a fallback."""
    logits, labels, weights = make_case(2, 50, 3, torch.float64, 'cpu')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        compare(logits, labels, weights, lam_pos=lam, lam_neg=lam)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', list(TOL))
def test_smallest_accepted_lambda_gives_no_nan(device, dtype):
    """At the smallest lambda the check accepts, finite logits (ties at
    each set's extreme score, saturated sigmoids included) give finite
    expectations and gradients: log2(e) / lam, the kernels' float32 scale,
    is finite there, where 1 / FLT_MAX (the bound before) made it inf and
    0 * inf NaN; a lambda just below is rejected."""
    from mmdet_lossplug.ops._arguments import MIN_LAMBDA_FLOAT32
    scale = torch.tensor(math.log2(math.e) / MIN_LAMBDA_FLOAT32)
    assert torch.isfinite(scale.float())
    assert not torch.isfinite(
        torch.tensor(math.log2(math.e) / (0.99 * MIN_LAMBDA_FLOAT32)).float())
    logits, labels, weights = make_case(2, 60, 5, dtype, device)
    logits[:, :10] = torch.tensor([-200., -3., 0., 3., 200.], dtype=dtype)
    logits[:, 10:20] = 1e4
    x = logits.requires_grad_()
    lam = MIN_LAMBDA_FLOAT32
    e_neg, e_pos = dr_expectation_op(x, labels, weights, lam, lam)
    grad, = torch.autograd.grad((2 * e_neg - 3 * e_pos).sum(), x)
    assert torch.isfinite(torch.cat([e_neg, e_pos])).all(), (e_neg, e_pos)
    assert torch.isfinite(grad).all()
    with pytest.raises(ValueError, match='lam_neg must be a finite'):
        dr_expectation_op(x, labels, weights, 1.0, 0.99 * lam)


def test_op_checks_inputs():
    logits, labels, weights = make_case(1, 50, 3, torch.float32, 'cpu')
    labels[0, 3] = 4
    with pytest.raises(ValueError, match=r'label 4 outside \[0, 3\]'):
        dr_expectation_op(logits, labels, weights, 1., 0.1)
    with pytest.raises(ValueError, match='impl must be one of'):
        dr_expectation(logits, labels, weights, 1., 0.1, impl='cuda')


@pytest.mark.skipif(shutil.which('nvcc') is None, reason='needs nvcc')
@pytest.mark.parametrize('arch', ['sm_75', 'sm_80', 'sm_90'])
def test_cuda_kernel_compiles_with_plain_nvcc(arch, tmp_path):
    """With the flags PyTorch's extension builds add (no implicit __half /
    __nv_bfloat16 conversions)."""
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS
    source = osp.join(ROOT, 'mmdet_lossplug', 'csrc', 'cuda',
                      'dr_expectation_cuda.cu')
    proc = subprocess.run([
        'nvcc', '-c', '-std=c++17', f'-arch={arch}', *COMMON_NVCC_FLAGS,
        source, '-o',
        str(tmp_path / 'dr.o')
    ],
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / 'dr.o').stat().st_size > 0


def test_cpu_backward_reuses_its_buffer_only_when_free():
    """The CPU backward hands out its previous gradient's buffer again only
    once nobody holds it (or a view of it): a kept gradient never changes."""
    logits, labels, weights = make_case(2, 300, 7, torch.float32, 'cpu')
    x = logits.requires_grad_()

    def grad(scale):
        e_neg, e_pos = dr_expectation_op(x, labels, weights, LAM_POS, LAM_NEG)
        return torch.autograd.grad((scale * e_neg - e_pos).sum(), x)[0]

    kept = grad(1.0)
    view = grad(2.0)[:, 1:]  # only a view of the second gradient is kept
    want_kept, want_view = kept.clone(), view.clone()
    fresh = grad(3.0)
    assert torch.equal(kept, want_kept) and torch.equal(view, want_view)
    assert not torch.equal(fresh, kept)
    pointer = fresh.data_ptr()
    del fresh
    assert grad(3.0).data_ptr() == pointer  # reused once free


def cuda_include_dir():
    from torch.utils.cpp_extension import CUDA_HOME
    path = osp.join(CUDA_HOME or '/usr/local/cuda', 'include')
    return path if osp.exists(osp.join(path, 'cuda_runtime_api.h')) else None


@pytest.mark.skipif(
    cuda_include_dir() is None or shutil.which('g++') is None,
    reason='needs the CUDA toolkit\'s headers and g++')
def test_binding_compiles_with_cuda(tmp_path):
    """The binding's WITH_CUDA part against PyTorch's headers: syntax only
    (the CPU wheel lacks one generated header, stubbed here)."""
    import sysconfig

    from torch.utils.cpp_extension import include_paths
    (tmp_path / 'c10' / 'cuda' / 'impl').mkdir(parents=True)
    (tmp_path / 'c10' / 'cuda' / 'impl' / 'cuda_cmake_macros.h').touch()
    includes = [
        str(tmp_path), *include_paths(),
        cuda_include_dir(),
        sysconfig.get_paths()['include']
    ]
    proc = subprocess.run([
        'g++', '-fsyntax-only', '-std=c++20', '-Wall', '-DWITH_CUDA',
        '-DTORCH_EXTENSION_NAME=_ext', *(f'-I{p}' for p in includes),
        osp.join(ROOT, 'mmdet_lossplug', 'csrc', 'dr_expectation.cpp')
    ],
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
