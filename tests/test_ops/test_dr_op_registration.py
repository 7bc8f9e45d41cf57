"""The op as a PyTorch operator: torch.library.opcheck (schema, fake
kernel, autograd registration, AOT dispatch) and torch.compile(fullgraph=True)
through the public entry point with the eager results where torch has fake
kernels (>= 2.4); on every torch, a compiled function with the eager
results, autograd on the operator itself, and a clear error on a second
derivative."""
import importlib
import subprocess
import sys
from functools import partial

import pytest
import torch

from mmdet_lossplug.ops import HAS_EXT, dr_expectation
from ..helpers import DEVICES, ROOT, needs_fake_kernels

pytestmark = pytest.mark.skipif(
    not HAS_EXT, reason='mmdet_lossplug._ext is not built')
dr_expectation_op = partial(dr_expectation, impl='op')


def make_case(dtype=torch.float32, batch=2, anchors=40, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(batch, anchors, classes, generator=g) * 3).to(dtype)
    labels = torch.randint(0, classes + 1, (batch, anchors), generator=g)
    weights = (torch.rand(batch, anchors, generator=g) > 0.2).float()
    return logits, labels, weights


@needs_fake_kernels
@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype',
                         [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize('with_weights', [True, False])
def test_opcheck(device, dtype, with_weights):
    from torch.library import opcheck
    logits, labels, weights = (t.to(device) for t in make_case(dtype))
    weights = weights if with_weights else None
    opcheck(torch.ops.mmdet_lossplug.dr_expectation.default,
            (logits.requires_grad_(), labels, weights, 1.0, 0.1))
    _, _, stats, _ = torch.ops.mmdet_lossplug.dr_expectation(
        logits, labels, weights, 1.0, 0.1)
    g_neg, g_pos = torch.randn(2, 2, dtype=stats.dtype, device=device)
    opcheck(
        torch.ops.mmdet_lossplug.dr_expectation_backward.default,
        (g_neg, g_pos, logits.detach(), labels, weights, stats, 1.0, 0.1),
        test_utils=('test_schema', 'test_faketensor',
                    'test_aot_dispatch_dynamic'))


@pytest.mark.parametrize('fn', [dr_expectation, dr_expectation_op])
@pytest.mark.parametrize('fullgraph', [
    pytest.param(True, marks=needs_fake_kernels),
    False,
])
def test_compiles_with_eager_results(fn, fullgraph):
    """Without fake kernels (torch < 2.4) Dynamo breaks the graph at the
    operator and runs it eagerly: the same numbers either way."""
    torch._dynamo.reset()
    logits, labels, weights = make_case()

    def loss(x):
        e_neg, e_pos = fn(x, labels, weights, 1.0, 0.1)
        return (2 * e_neg - 3 * e_pos).sum()

    compiled = torch.compile(loss, fullgraph=fullgraph, backend='aot_eager')
    results = []
    for run in (loss, compiled):
        x = logits.clone().requires_grad_()
        value = run(x)
        grad, = torch.autograd.grad(value, x)
        results.append((value, grad))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


@pytest.mark.parametrize('fullgraph', [
    pytest.param(True, marks=needs_fake_kernels),
    False,
])
def test_compiled_op_still_raises_on_bad_values(fullgraph):
    torch._dynamo.reset()
    logits, labels, weights = make_case()
    compiled = torch.compile(
        dr_expectation, fullgraph=fullgraph, backend='eager')
    compiled(logits, labels, weights, 1.0, 0.1)
    labels[1, 3] = -1
    with pytest.raises(ValueError, match=r'label -1 outside \[0, 5\]'):
        compiled(logits, labels, weights, 1.0, 0.1)


@needs_fake_kernels
def test_fake_kernels_check_devices_as_the_real_ones_do():
    """CPU logits with meta labels dispatch to the fake kernel, which must
    reject them as the CPU/CUDA kernels reject mixed devices."""
    logits, labels, weights = make_case()
    meta = torch.device('meta')
    with pytest.raises(
            ValueError,
            match=r'^labels is on meta but logits on cpu; put them on one '
            'device'):
        torch.ops.mmdet_lossplug.dr_expectation(logits, labels.to(meta),
                                                weights, 1.0, 0.1)
    with pytest.raises(
            ValueError, match='^label_weights is on meta but logits'):
        torch.ops.mmdet_lossplug.dr_expectation(logits, labels,
                                                weights.to(meta), 1.0, 0.1)
    _, _, stats, _ = torch.ops.mmdet_lossplug.dr_expectation(
        logits, labels, weights, 1.0, 0.1)
    g = torch.ones(2)
    with pytest.raises(
            ValueError, match='^stats is on meta but logits on cpu'):
        torch.ops.mmdet_lossplug.dr_expectation_backward(
            g, g, logits, labels, weights, stats.to(meta), 1.0, 0.1)


def test_status_layout_matches_the_extension():
    """The entry point reads the op's status by index."""
    from mmdet_lossplug import _ext
    module = importlib.import_module('mmdet_lossplug.ops.dr_expectation')
    assert (_ext.STATUS_NON_FINITE_LOGITS, _ext.STATUS_BAD_LABELS,
            _ext.STATUS_NAN_WEIGHTS, _ext.NUM_STATUS) == (0, 1, 2, 4)
    assert module._LABELS_AND_WEIGHTS_VALID == \
        _ext.STATUS_LABELS_AND_WEIGHTS_VALID == 3


def test_operator_itself_is_differentiable():
    """Called directly, ``torch.ops.mmdet_lossplug.dr_expectation`` carries
    its gradient (``register_autograd``, or the ``Autograd`` kernel before
    torch 2.4): the same as through the public entry point."""
    logits, labels, weights = make_case(torch.float64)
    grads = []
    for fn in (torch.ops.mmdet_lossplug.dr_expectation, dr_expectation_op):
        x = logits.clone().requires_grad_()
        e_neg, e_pos = fn(x, labels, weights, 1.0, 0.1)[:2]
        grads.append(torch.autograd.grad((2 * e_neg - 3 * e_pos).sum(), x))
    assert grads[0][0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
    with torch.no_grad():
        out = torch.ops.mmdet_lossplug.dr_expectation(
            logits.clone().requires_grad_(), labels, weights, 1.0, 0.1)
    assert not any(t.requires_grad for t in out)


def test_second_derivative_raises_a_clear_error():
    logits, labels, weights = make_case(torch.float64)
    x = logits.requires_grad_()
    e_neg, e_pos = dr_expectation_op(x, labels, weights, 1.0, 0.1)
    grad, = torch.autograd.grad((e_neg - e_pos).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match='no second derivative'):
        (grad**2).sum().backward()


def test_ops_import_without_mmdet_mmcv_or_mmengine():
    """mmdet_lossplug.ops (and the operators) load with the OpenMMLab
    packages blocked; the package's own __init__, which registers modules
    with MMDetection, is bypassed."""
    code = (
        'import sys, types, os\n'
        'for name in ("mmdet", "mmcv", "mmengine"):\n'
        '    sys.modules[name] = None  # any import of them fails\n'
        'package = types.ModuleType("mmdet_lossplug")\n'
        'package.__path__ = [os.path.join(os.getcwd(), "mmdet_lossplug")]\n'
        'sys.modules["mmdet_lossplug"] = package\n'
        'import torch\n'
        'from mmdet_lossplug.ops import HAS_EXT, dr_expectation\n'
        'x = torch.randn(1, 4, 3)\n'
        'print(HAS_EXT, dr_expectation(x, torch.tensor([[0, 3, 1, 2]]), '
        'None, 1.0, 0.1)[0].shape)\n')
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ['True', 'torch.Size([1])']
