"""How many kernels the DR op (and a DR loss around it) launches per call on
the CUDA path, counted without a GPU (issue 25).

Two counts, each able to fail:

- The Python side, on the ``meta`` device, which takes the entry point's
  non-CPU path (the CUDA path's code: the status check through
  ``torch._assert_async``) with ``_op_supports`` patched to let the op run
  there (its fake kernels): every operator dispatched is recorded by a
  ``TorchDispatchMode``. Views and allocations launch nothing; the op's
  two operators launch the kernels of their CUDA launchers, counted in
  ``dr_expectation_cuda.cu`` (``<<<`` in ``forward_typed`` and
  ``backward_typed``); any other operator counts as one launch.
- The C++ side: what the operators do around their kernels is one helper
  for both devices (checks, ``contiguous``, ``empty_outputs``), so the CPU
  operators' profile (``torch.profiler``, nested operators) shows it: only
  allocations and views, no fill, clone or copy.

On a GPU, ``test_dr_op_cuda.py::test_cuda_launches_per_call`` counts the
kernels themselves with the CUDA profiler.
"""
import importlib
import os.path as osp
import re

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mmdet_lossplug.ops import HAS_EXT, dr_expectation
from ..helpers import ROOT, needs_fake_kernels

dr_module = importlib.import_module('mmdet_lossplug.ops.dr_expectation')
pytestmark = pytest.mark.skipif(
    not HAS_EXT, reason='mmdet_lossplug._ext is not built')

# Operators that launch nothing: views, metadata and allocations.
NO_LAUNCH = {
    'empty', 'empty_like', 'empty_strided', 'new_empty', 'select', 'slice',
    'view', '_unsafe_view', 'alias', 'detach', 'as_strided', 'expand',
    'unsqueeze', 'squeeze', 't', 'lift_fresh', 'reshape', 'narrow'
}
# The launches of one call of the op (its entry point) on the CUDA path.
FORWARD_LAUNCHES, BACKWARD_LAUNCHES = 3, 1


def launcher_kernels(function):
    """Kernel launches (``<<<``) in the body of a launcher of the .cu."""
    with open(
            osp.join(ROOT, 'mmdet_lossplug', 'csrc', 'cuda',
                     'dr_expectation_cuda.cu')) as f:
        source = f.read()
    body = source[source.index(f'cudaError_t {function}('):]
    body = body[:body.index('\n}\n')]
    return len(re.findall(r'<<<', body))


class Launches(TorchDispatchMode):
    """Records each operator dispatched, and the launches it stands for."""

    def __init__(self):
        super().__init__()
        self.ops, self.launches = [], 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        namespace, op = name.split('::')
        if name == 'mmdet_lossplug::dr_expectation':
            launches = launcher_kernels('forward_typed')
        elif name == 'mmdet_lossplug::dr_expectation_backward':
            launches = launcher_kernels('backward_typed')
        else:
            launches = int(op not in NO_LAUNCH)
        self.ops.append((name, launches))
        self.launches += launches
        return func(*args, **(kwargs or {}))


def meta_case(batch=2, anchors=50, classes=7):
    logits = torch.empty(batch, anchors, classes, device='meta')
    labels = torch.empty(batch, anchors, dtype=torch.long, device='meta')
    weights = torch.empty(batch, anchors, device='meta')
    return logits.requires_grad_(), labels, weights


def test_the_launchers_launch_two_kernels_forward_one_backward():
    assert launcher_kernels('forward_typed') == 2
    assert launcher_kernels('backward_typed') == 1


@needs_fake_kernels  # the meta device runs the op's fake kernel
def test_op_call_launches_three_kernels_forward_one_backward(monkeypatch):
    """Forward: the op's two kernels and the assert on its status flag (no
    status zero-fill, no clones, no eq/all); backward: one kernel."""
    monkeypatch.setattr(dr_module, '_op_supports', lambda logits: True)
    logits, labels, weights = meta_case()
    with Launches() as forward:
        e_neg, e_pos = dr_expectation(logits, labels, weights, 1.0, 0.1, 'op')
    assert forward.launches == FORWARD_LAUNCHES, forward.ops
    assert [op for op, n in forward.ops
            if n] == ['mmdet_lossplug::dr_expectation',
                      'aten::_assert_async'], forward.ops
    grads = [torch.empty_like(e_neg), torch.empty_like(e_pos)]
    with Launches() as backward:
        torch.autograd.grad([e_neg, e_pos], logits, grads)
    assert backward.launches == BACKWARD_LAUNCHES, backward.ops


@needs_fake_kernels
def test_dr_loss_launches(monkeypatch):
    """A DR loss's forward + backward on the CUDA path, all launches: the
    op's four and the loss's own (its label-weight check, the logistic of
    E- - E+ + margin, the mean), printed for docs/benchmarks.md and held
    at what they are."""
    pytest.importorskip('mmdet')
    from mmdet_lossplug.models.losses import DRLoss
    monkeypatch.setattr(dr_module, '_op_supports', lambda logits: True)
    logits, labels, weights = meta_case()
    loss_fn = DRLoss(impl='op')
    with Launches() as both:
        loss = loss_fn(logits, labels, weights)
        torch.autograd.grad(loss, logits)
    launching = [(op, n) for op, n in both.ops if n]
    print('DR loss forward + backward launches:', both.launches, launching)
    op_launches = sum(n for op, n in launching if 'mmdet_lossplug' in op)
    assert op_launches == FORWARD_LAUNCHES - 1 + BACKWARD_LAUNCHES
    # the op's 4; the weight check 6 (isfinite is abs, ne, eq, mul; all;
    # the assert); the loss's forward 6 and backward 8 (docs/benchmarks.md)
    assert both.launches == 24, launching


def nested_ops(event):
    for child in event.cpu_children:
        yield child.name
        yield from nested_ops(child)


@pytest.mark.parametrize('backward', [False, True])
def test_operators_allocate_and_launch_nothing_else(backward):
    """The operators' own work around their kernels, shared by CPU and
    CUDA: checks, contiguous inputs, outputs allocated, not filled (the
    CPU backward adds its gradient buffer's reuse, set_)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 40, 5, generator=g)
    labels = torch.randint(0, 6, (2, 40), generator=g)
    weights = torch.rand(2, 40, generator=g)
    op = torch.ops.mmdet_lossplug
    _, _, stats, _ = op.dr_expectation(logits, labels, weights, 1.0, 0.1)
    ones = torch.ones(2)
    name = 'mmdet_lossplug::dr_expectation' + ('_backward' if backward else '')
    with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        if backward:
            op.dr_expectation_backward(ones, ones, logits, labels, weights,
                                       stats, 1.0, 0.1)
        else:
            op.dr_expectation(logits, labels, weights, 1.0, 0.1)
    # the kernel's event: before torch 2.4 the Autograd kernel (Python) is
    # an event of the same name around it
    event, = (
        e for e in prof.events()
        if e.name == name and name not in set(nested_ops(e)))
    inside = set(nested_ops(event))
    allowed = {
        'aten::empty', 'aten::select', 'aten::as_strided', 'aten::to',
        'aten::contiguous', 'aten::empty_like', 'aten::empty_strided',
        'aten::lift_fresh', 'aten::set_', 'aten::view', 'aten::narrow',
        'aten::slice'
    }
    assert inside <= allowed, inside - allowed


def test_backward_with_one_expectation_unused():
    """With no zero-filled gradients for unused outputs, a loss of E-
    alone gets E+'s gradient as zeros from the op's backward itself."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 30, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (2, 30), generator=g)
    x = logits.requires_grad_()
    e_neg, e_pos = dr_expectation(x, labels, None, 1.0, 0.1, 'op')
    alone, = torch.autograd.grad(e_neg.sum(), x, retain_graph=True)
    both, = torch.autograd.grad((e_neg + 0 * e_pos).sum(), x)
    torch.testing.assert_close(alone, both, rtol=0, atol=0)
