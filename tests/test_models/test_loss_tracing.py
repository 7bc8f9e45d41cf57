"""Every loss of the package runs without a host synchronisation and
compiles whole.

Two independent proofs that no loss reads a tensor value back to the host
(``.item()``, ``bool(tensor)``, ``int(tensor)``, ``.tolist()``):

- on the ``meta`` device, where tensors have no data, every such read
  raises, and the value checks take the accelerator's device-side path;
- ``torch.compile(fullgraph=True)`` refuses any graph break, which each
  such read is; the compiled loss must also equal the eager one, value and
  gradient. Before torch 2.9 (Inductor drops device asserts) the value
  checks break the graph on purpose, so there the compiled loss is checked
  against the eager one without ``fullgraph``.
"""
import math

import pytest
import torch

from mmdet_lossplug.models.losses import (AdaptiveFocalLoss, DRLoss,
                                          Poly1CrossEntropyLoss,
                                          Poly1StarFocalLoss, PolyFocalLoss,
                                          PolyNCrossEntropyLoss)
from mmdet_lossplug.ops import HAS_EXT
from mmdet_lossplug.torch_features import HAS_COMPILED_ASSERTS
from ..helpers import needs_fake_kernels

N, C = 24, 5
B, A = 2, 40


def dense_inputs(background=True, one_hot=False, ignore=None):
    """``(N, C)`` logits with a wide spread of ``pt``, labels in ``[0, C]``
    (``[0, C)`` without ``background``), per-sample weights."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(N, C, generator=g) * 3
    labels = torch.randint(0, C + int(background), (N, ), generator=g)
    if ignore is not None:
        labels[::5] = ignore
    target = torch.nn.functional.one_hot(labels, C + 1)[:, :C].float() \
        if one_hot else labels
    return logits, target, torch.rand(N, generator=g)


def image_inputs():
    """``(B, A, C)`` logits, ``(B, A)`` labels (an image without
    positives) and weights (some anchors ignored)."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(B, A, C, generator=g) * 3
    labels = torch.randint(0, C + 1, (B, A), generator=g)
    labels[1] = C
    weights = (torch.rand(B, A, generator=g) > 0.2).float()
    return logits, labels, weights


# (id, loss factory, inputs factory)
DENSE_CASES = [
    ('polyfocal', lambda: PolyFocalLoss(epsilon=0.5), dense_inputs),
    ('polyfocal-onehot-gamma0.5',
     lambda: PolyFocalLoss(gamma=0.5, epsilon=-0.4),
     lambda: dense_inputs(one_hot=True)),
    ('poly1star', lambda: Poly1StarFocalLoss(epsilon=0.2), dense_inputs),
    ('poly1ce', lambda: Poly1CrossEntropyLoss(epsilon=-1.0),
     lambda: dense_inputs(background=False)),
    ('poly1ce-classweight-ignore', lambda: Poly1CrossEntropyLoss(
        epsilon=0.5,
        class_weight=[1.0, 2.0, 0.5, 1.0, 3.0],
        ignore_index=-1,
        avg_non_ignore=True), lambda: dense_inputs(False, ignore=-1)),
    ('poly1ce-sigmoid-ignore', lambda: Poly1CrossEntropyLoss(
        use_sigmoid=True, epsilon=1.0, ignore_index=255, avg_non_ignore=True),
     lambda: dense_inputs(ignore=255)),
    ('polyn-smoothing',
     lambda: PolyNCrossEntropyLoss(epsilons=(-0.5, 0.3), label_smoothing=0.1),
     lambda: dense_inputs(background=False)),
    ('adaptive-softmax',
     lambda: AdaptiveFocalLoss(gammas=(5, 3, 2), thresholds=(0.2, 0.5)),
     lambda: dense_inputs(background=False)),
    ('adaptive-softmax-auto', lambda: AdaptiveFocalLoss(gammas='auto', p0=0.2),
     lambda: dense_inputs(background=False)),
    ('adaptive-sigmoid',
     lambda: AdaptiveFocalLoss(use_sigmoid=True, alpha=0.25), dense_inputs),
    ('adaptive-sigmoid-auto', lambda: AdaptiveFocalLoss(
        use_sigmoid=True, gammas='auto', p0=0.25, alpha=0.25), dense_inputs),
]
DR_REFERENCE_CASES = [
    ('dr-' + pool + '-' + pair, lambda pool=pool, pair=pair: DRLoss(
        impl='reference', pool=pool, pair=pair), image_inputs)
    for pool in ('image', 'batch') for pair in ('dr', 'neg_only')
]
CASES = DENSE_CASES + DR_REFERENCE_CASES


def registered_dr_op() -> bool:
    """The compiled DR op registered with PyTorch's dispatcher (what
    ``torch.compile`` needs to see through ``impl='op'``)."""
    return HAS_EXT and any(
        name.startswith('mmdet_lossplug::')
        for name in torch._C._dispatch_get_all_op_names())


def forward_backward(loss, inputs):
    logits = inputs[0].detach().clone().requires_grad_()
    out = loss(logits, *inputs[1:])
    out.backward()
    return out.detach(), logits.grad


@pytest.mark.parametrize(
    'make_loss,make_inputs', [case[1:] for case in CASES],
    ids=[case[0] for case in CASES])
def test_no_host_read_on_the_meta_device(make_loss, make_inputs):
    loss = make_loss().to('meta')
    inputs = [t.to('meta') for t in make_inputs()]
    out, grad = forward_backward(loss, inputs)
    assert out.shape == () and grad.shape == inputs[0].shape


def assert_compiled_equals_eager(make_loss, make_inputs, backend):
    inputs = make_inputs()
    want, want_grad = forward_backward(make_loss(), inputs)
    compiled = torch.compile(
        make_loss(), fullgraph=HAS_COMPILED_ASSERTS, backend=backend)
    got, got_grad = forward_backward(compiled, inputs)
    assert torch.isfinite(want) and torch.isfinite(want_grad).all()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_grad, want_grad)


@pytest.mark.parametrize(
    'make_loss,make_inputs', [case[1:] for case in CASES],
    ids=[case[0] for case in CASES])
def test_compiles_without_graph_break(make_loss, make_inputs):
    """Dynamo captures the whole loss (``aot_eager`` runs the captured
    forward and backward graphs without code generation, to stay fast)."""
    torch._dynamo.reset()
    assert_compiled_equals_eager(make_loss, make_inputs, 'aot_eager')


@pytest.mark.parametrize(
    'make_loss,make_inputs',
    [(lambda: AdaptiveFocalLoss(gammas='auto', p0=0.2),
      lambda: dense_inputs(background=False)),
     (lambda: DRLoss(impl='reference'), image_inputs)],
    ids=['adaptive-auto', 'dr-reference'])
def test_inductor_equals_eager(make_loss, make_inputs):
    torch._dynamo.reset()
    assert_compiled_equals_eager(make_loss, make_inputs, 'inductor')


@needs_fake_kernels
@pytest.mark.parametrize('impl', ['auto', 'op'])
def test_dr_loss_through_the_op_compiles_without_graph_break(impl):
    if not registered_dr_op():
        pytest.skip('the compiled DR op is not registered with the PyTorch '
                    'dispatcher (torch.library) in this build: '
                    'torch.compile cannot trace a pybind function')
    torch._dynamo.reset()
    assert_compiled_equals_eager(lambda: DRLoss(impl=impl), image_inputs,
                                 'aot_eager')


def test_value_checks_survive_compilation():
    """Under ``torch.compile`` (Inductor) a bad value fails through the
    traced device-side assert (a RuntimeError naming the argument); before
    torch 2.9 through the check run eagerly (a ValueError)."""
    torch._dynamo.reset()
    compiled = torch.compile(PolyFocalLoss(), fullgraph=HAS_COMPILED_ASSERTS)
    logits, labels, _ = dense_inputs()
    labels[3] = C + 1
    error = RuntimeError if HAS_COMPILED_ASSERTS else ValueError
    with pytest.raises(error, match='target has values outside'):
        compiled(logits, labels)


def test_auto_gamma_is_a_python_float_computed_once(monkeypatch):
    """Lambert W (scipy) runs at construction; a forward never calls it."""
    loss = AdaptiveFocalLoss(gammas='auto', p0=0.2)
    assert all(type(g) is float and math.isfinite(g) for g in loss.gammas)
    import mmdet_lossplug.models.losses.adaptive_focal_loss as module

    def no_call(p0):
        raise AssertionError('focal_gamma_for_threshold called in forward')

    monkeypatch.setattr(module, 'focal_gamma_for_threshold', no_call)
    logits, labels, _ = dense_inputs(background=False)
    assert torch.isfinite(loss(logits, labels))
