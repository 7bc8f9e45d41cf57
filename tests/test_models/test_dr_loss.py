"""DRLoss against the brute-force oracle for every option, its fixed point
at zero logits, degenerate images, precision and bad input."""
import math

import pytest
import torch

from mmdet_lossplug.models.losses import DRLoss
from ..dr_oracle import dr_loss as oracle_dr_loss
from ..helpers import needs_cpu_grad_scaler
from ..test_ops.test_dr_expectation_reference import make_inputs

DEFAULTS = dict(
    lam_pos=1.0, lam_neg=0.1 / math.log(3.5), L=6.0, margin=0.5, tau=4.0)


@pytest.mark.parametrize('smooth,rho', [('logistic', 0.5), ('quadratic', 0.2),
                                        ('quadratic', 0.5), ('hinge', 0.5)])
@pytest.mark.parametrize('pair', ['dr', 'neg_only'])
@pytest.mark.parametrize('pool', ['image', 'batch'])
def test_dr_loss_matches_oracle(smooth, rho, pair, pool):
    logits, labels, weights = make_inputs(seed=4)
    labels[1] = logits.size(-1)  # no positives in image 1
    loss = DRLoss(smooth=smooth, rho=rho, pair=pair, pool=pool)
    x = logits.clone().requires_grad_()
    out = loss(x, labels, weights)
    want = oracle_dr_loss(
        logits,
        labels,
        weights,
        smooth=smooth,
        rho=rho,
        pair=pair,
        pool=pool,
        **DEFAULTS)
    torch.testing.assert_close(out, torch.tensor(want, dtype=out.dtype))
    out.backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize('L', [4.0, 6.0, 8.0, 10.0])
def test_dr_loss_smoothness_and_temperatures(L):
    logits, labels, weights = make_inputs(seed=5)
    params = dict(
        DEFAULTS, L=L, lam_pos=1 / math.log(5.5), lam_neg=0.1 / math.log(20))
    loss = DRLoss(L=L, lam_pos=params['lam_pos'], lam_neg=params['lam_neg'])
    want = oracle_dr_loss(logits, labels, weights, **params)
    torch.testing.assert_close(
        loss(logits, labels, weights), torch.tensor(want, dtype=torch.float64))


def test_batch_pooling_is_one_image_of_every_anchor():
    """``pool='batch'`` equals the oracle on one image made of every
    anchor of the batch, each with its own label and weight; it differs
    from per-image pooling, and from the same pool with the labels moved to
    other anchors (so a scrambled pool cannot pass)."""
    logits, labels, weights = make_inputs(seed=6)
    batch = DRLoss(pool='batch')(logits, labels, weights)
    pooled = [
        t.reshape(1, -1, *t.shape[2:]) for t in (logits, labels, weights)
    ]
    want = oracle_dr_loss(*pooled, **DEFAULTS)
    torch.testing.assert_close(batch, torch.tensor(want, dtype=batch.dtype))
    scrambled = oracle_dr_loss(pooled[0], pooled[1].flip(1), pooled[2],
                               **DEFAULTS)
    image = oracle_dr_loss(logits, labels, weights, **DEFAULTS)
    assert min(abs(want - scrambled), abs(want - image)) > 1e-3


@pytest.mark.parametrize('num_classes', [1, 80])
def test_zero_logits_give_the_initial_loss(num_classes):
    """p = 0.5 everywhere: E- = E+ = 0.5, z = margin = 0.5, and the loss is
    tau * ln(1 + e^(L/2)) / L = 4 ln(1 + e^3) / 6 = 2.03 whatever the
    labels, as long as each image has a positive and a negative."""
    labels = torch.randint(0, num_classes + 1, (4, 300))
    labels[:, :2] = torch.tensor([0, num_classes])  # a positive, a negative
    logits = torch.zeros(4, 300, num_classes)
    out = DRLoss()(logits, labels)
    torch.testing.assert_close(out,
                               torch.tensor(4 * math.log1p(math.exp(3)) / 6))
    assert abs(out.item() - 2.03) < 5e-3


def test_degenerate_images_are_finite():
    logits = torch.randn(3, 20, 5, requires_grad=True)
    labels = torch.full((3, 20), 5)  # no positives anywhere
    weights = torch.ones(3, 20)
    weights[1] = 0  # image 1: every anchor ignored
    out = DRLoss()(logits, labels, weights)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(logits.grad).all()
    assert (logits.grad[1] == 0).all()
    empty = torch.zeros(0, 20, 5, requires_grad=True)
    out = DRLoss()(empty, torch.zeros(0, 20, dtype=torch.long))
    assert out.item() == 0.0
    out.backward()


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_logits(dtype):
    logits, labels, weights = make_inputs(
        anchors=3000, classes=80, dtype=torch.float32)
    low = logits.to(dtype)
    out = DRLoss()(low, labels, weights)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    torch.testing.assert_close(out, DRLoss()(low.float(), labels, weights))


@pytest.mark.parametrize('kwargs,match', [
    (dict(smooth='cubic'), 'smooth'),
    (dict(pair='all'), 'pair'),
    (dict(pool='gpu'), 'pool'),
    (dict(impl='cuda'), 'impl'),
    (dict(lam_neg=0), 'lam_neg'),
    (dict(lam_neg=1e-39), 'lam_neg'),
    (dict(lam_pos=-1.0), 'lam_pos'),
    (dict(lam_pos=float('nan')), 'lam_pos'),
    (dict(lam_pos=float('inf')), 'lam_pos'),
    (dict(L=-1), 'L'),
    (dict(L=0), 'L'),
    (dict(L=float('inf')), 'L'),
    (dict(L=float('nan')), 'L'),
    (dict(margin=float('nan')), 'margin'),
    (dict(margin=float('inf')), 'margin'),
    (dict(rho=0), 'rho'),
    (dict(rho=1.5), 'rho'),
    (dict(rho=float('nan')), 'rho'),
    (dict(loss_weight=float('nan')), 'loss_weight'),
    (dict(use_sigmoid=False), 'use_sigmoid'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DRLoss(**kwargs)


def test_smallest_temperature_is_exact():
    """``lam = 1e-3`` (the smallest accepted): the reference still equals
    the float64 oracle in float32."""
    logits, labels, weights = make_inputs(dtype=torch.float32, seed=7)
    params = dict(DEFAULTS, lam_pos=1e-3, lam_neg=1e-3)
    out = DRLoss(
        lam_pos=1e-3, lam_neg=1e-3, impl='reference')(logits, labels, weights)
    want = oracle_dr_loss(logits, labels, weights, **params)
    torch.testing.assert_close(out.double(),
                               torch.tensor(want, dtype=torch.float64))


@pytest.mark.parametrize('impl', ['auto', 'reference'])
def test_non_finite_logit_gives_a_nan_loss(impl):
    """The training-loss rule: a NaN/Inf score makes the loss (and its
    gradient) non-finite, without an exception (AMP's GradScaler then skips
    the step); an out-of-range label stays an error."""
    logits, labels, weights = make_inputs(dtype=torch.float32)
    for value in (float('nan'), float('inf')):
        bad = logits.clone()
        bad[0, 0, 0] = value
        bad.requires_grad_()
        loss = DRLoss(impl=impl)(bad, labels, weights)
        assert loss.isnan()
        loss.backward()
        assert bad.grad.isnan().any()
    labels[0, 0] = -1
    with pytest.raises(ValueError, match=r'outside \[0, 4\]'):
        DRLoss(impl=impl)(logits, labels, weights)


def test_zero_anchors_agree_between_implementations():
    """A = 0 (an image without anchors): every implementation gives the
    loss of E- = 0, E+ = 1 per image, l(0 - 1 + margin)."""
    logits = torch.zeros(2, 0, 5, requires_grad=True)
    labels = torch.zeros(2, 0, dtype=torch.long)
    want = oracle_dr_loss(logits.detach(), labels, torch.ones(2, 0),
                          **DEFAULTS)
    for impl in ('auto', 'reference'):
        out = DRLoss(impl=impl)(logits, labels)
        torch.testing.assert_close(out.double(),
                                   torch.tensor(want, dtype=torch.float64))
        out.backward()


@needs_cpu_grad_scaler
@pytest.mark.parametrize('impl', ['auto', 'reference'])
def test_amp_grad_scaler_skips_the_step_of_a_non_finite_logit(impl):
    """A short CPU training under bfloat16 autocast with GradScaler: the
    step whose logits hold an Inf (an overflow) gives a NaN loss, the
    scaler skips it (parameters unchanged) and halves its scale, and the
    next steps train on."""
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 300, 16, generator=g)
    labels = torch.randint(0, 5, (2, 300), generator=g)
    labels[:, ::3] = 4  # background
    model = torch.nn.Linear(16, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0**10)
    loss_fn = DRLoss(impl=impl)
    losses = []
    for step in range(4):
        inputs = features.clone()
        if step == 1:
            inputs[1, 7, 3] = float('inf')  # overflowing activations
        before = [p.detach().clone() for p in model.parameters()]
        scale = scaler.get_scale()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            loss = loss_fn(model(inputs), labels)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        changed = any(not torch.equal(a, b)
                      for a, b in zip(before, model.parameters()))
        losses.append(loss.item())
        if step == 1:
            assert math.isnan(losses[-1]) and not changed
            assert scaler.get_scale() == scale / 2
        else:
            assert math.isfinite(losses[-1]) and changed
    assert losses[3] < losses[0]


def test_bad_inputs():
    logits, labels, weights = make_inputs(dtype=torch.float32)
    bad_weights = weights.clone()
    bad_weights[1, 3] = float('nan')
    with pytest.raises(ValueError, match='^label_weights has NaN/Inf'):
        DRLoss()(logits, labels, bad_weights)
    with pytest.raises(ValueError, match='^labels is on meta but'):
        DRLoss()(logits, labels.to('meta'), weights)
    with pytest.raises(ValueError, match='^label_weights is on meta but'):
        DRLoss()(logits, labels, weights.to('meta'))
    with pytest.raises(TypeError, match='labels must be integers'):
        DRLoss()(logits, labels.float(), weights)


@pytest.mark.parametrize('pair', ['dr', 'neg_only'])
@pytest.mark.parametrize('dtype', [torch.int32, torch.uint8])
def test_narrow_integer_labels_equal_int64(pair, dtype):
    logits, labels, weights = make_inputs(dtype=torch.float32)
    loss = DRLoss(pair=pair)
    torch.testing.assert_close(
        loss(logits, labels.to(dtype), weights), loss(logits, labels, weights))
