"""PolyLoss family against independent oracles: MMDetection's own losses at
epsilon = 0, the Taylor series of -log(pt), closed forms, gradcheck."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.models.losses import CrossEntropyLoss, FocalLoss
from mmdet.registry import MODELS

from mmdet_lossplug.models.losses import (AdaptiveFocalLoss,
                                          Poly1CrossEntropyLoss,
                                          Poly1StarFocalLoss, PolyFocalLoss,
                                          PolyNCrossEntropyLoss)

REDUCTIONS = ['none', 'mean', 'sum']
TAYLOR_ORDER = 400  # (1 - pt) <= 0.9 below: the tail is < 0.9**400 ~ 5e-19


def taylor_poly(one_minus_pt, coefficients, offset=0.0):
    """sum_j c_j (1-pt)^(j + offset), with c_j = 1/j + coefficients[j]:
    -log(pt) (offset 0) or the focal series (offset gamma), perturbed."""
    total = torch.zeros_like(one_minus_pt)
    for j in range(1, TAYLOR_ORDER + 1):
        c = 1.0 / j + coefficients.get(j, 0.0)
        total = total + c * one_minus_pt**(j + offset)
    return total


def logits_with_pt_above(n, c, low=0.1, seed=0):
    """Logits whose sigmoid stays in [low, 1 - low], so the Taylor series
    converges fast for every pt."""
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, c, generator=g, dtype=torch.float64)
    p = low + (1 - 2 * low) * p
    return torch.log(p / (1 - p))


def sigmoid_terms(logits, labels, alpha=0.25):
    """(1 - pt, alpha_t) for labels in [0, C], ``C`` background: ``pt =
    y p + (1 - y)(1 - p)`` (Lin et al., Focal Loss, Eq. 2), ``alpha_t``
    likewise."""
    c = logits.size(1)
    target = F.one_hot(labels, c + 1)[:, :c].to(logits.dtype)
    p = logits.sigmoid()
    return (p * (1 - target) + (1 - p) * target,
            alpha * target + (1 - alpha) * (1 - target))


def random_labels(n, high, seed=1):
    return torch.randint(
        0, high, (n, ), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- focal --


@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('weighting', ['none', 'sample', 'element'])
@pytest.mark.parametrize('avg_factor', [None, 7.0])
def test_polyfocal_eps0_equals_mmdet_focal(reduction, weighting, avg_factor):
    if reduction == 'sum' and avg_factor is not None:
        pytest.skip('mmdet rejects avg_factor with sum')
    n, c = 37, 5
    logits = torch.randn(n, c) * 3
    labels = random_labels(n, c + 1)  # label c is background
    weight = {
        'none': None,
        'sample': torch.rand(n),
        'element': torch.rand(n, c)
    }[weighting]
    ours = PolyFocalLoss(epsilon=0.0, gamma=2.0, alpha=0.25, loss_weight=2.)
    theirs = FocalLoss(gamma=2.0, alpha=0.25, loss_weight=2.)
    x1 = logits.clone().requires_grad_()
    x2 = logits.clone().requires_grad_()
    a = ours(x1, labels, weight, avg_factor, reduction_override=reduction)
    b = theirs(x2, labels, weight, avg_factor, reduction_override=reduction)
    torch.testing.assert_close(a, b)
    a.sum().backward()
    b.sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)


def test_polyfocal_one_hot_target_equals_labels():
    logits = torch.randn(20, 4)
    labels = random_labels(20, 5)
    one_hot = F.one_hot(labels, 5)[:, :4]
    loss = PolyFocalLoss(epsilon=0.3)
    torch.testing.assert_close(loss(logits, labels), loss(logits, one_hot))


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (1.5, 0.3), (2.5, .15)])
@pytest.mark.parametrize('epsilon', [-1.0, -0.4, 0.0, 1.0])
def test_polyfocal_matches_taylor_series(gamma, alpha, epsilon):
    n, c = 16, 3
    logits = logits_with_pt_above(n, c)
    labels = random_labels(n, c + 1)
    one_minus_pt, alpha_t = sigmoid_terms(logits, labels, alpha)
    expected = alpha_t * taylor_poly(one_minus_pt, {1: epsilon}, gamma)
    loss = PolyFocalLoss(gamma=gamma, alpha=alpha, epsilon=epsilon)
    torch.testing.assert_close(
        loss(logits, labels, reduction_override='none'), expected)


def test_polyfocal_alpha_on_poly_false_weights_only_focal_term():
    logits = logits_with_pt_above(10, 2)
    labels = random_labels(10, 3)
    one_minus_pt, alpha_t = sigmoid_terms(logits, labels, 0.25)
    expected = alpha_t * taylor_poly(one_minus_pt, {}, 2.0) \
        - 0.5 * one_minus_pt**3
    loss = PolyFocalLoss(epsilon=-0.5, alpha_on_poly=False)
    torch.testing.assert_close(
        loss(logits, labels, reduction_override='none'), expected)


@pytest.mark.parametrize('epsilon', [-0.4, 0.0, 0.2])
def test_poly1star_drops_first_focal_polynomial(epsilon):
    n, c = 16, 3
    logits = logits_with_pt_above(n, c)
    labels = random_labels(n, c + 1)
    one_minus_pt, alpha_t = sigmoid_terms(logits, labels, 0.25)
    # c_1 = 1 - 1 = 0, c_2 = 1/2 + epsilon, c_j = 1/j beyond.
    expected = alpha_t * taylor_poly(one_minus_pt, {1: -1.0, 2: epsilon}, 2.)
    loss = Poly1StarFocalLoss(gamma=2.0, alpha=0.25, epsilon=epsilon)
    torch.testing.assert_close(
        loss(logits, labels, reduction_override='none'), expected)


def test_poly1star_eps0_is_focal_minus_first_term():
    logits = torch.randn(30, 4)
    labels = random_labels(30, 5)
    one_minus_pt, alpha_t = sigmoid_terms(logits, labels, 0.25)
    focal = FocalLoss(reduction='none')(logits, labels)
    star = Poly1StarFocalLoss(epsilon=0.0, reduction='none')(logits, labels)
    torch.testing.assert_close(star, focal - alpha_t * one_minus_pt**3)


def test_focal_class_zero_is_a_positive_and_label_c_background():
    logits = torch.zeros(2, 3)
    loss = PolyFocalLoss(epsilon=0.0, alpha=None, gamma=0.0, reduction='none')
    out = loss(logits, torch.tensor([0, 3]))
    # Every element is BCE at p = 0.5: log 2 whatever the target ...
    torch.testing.assert_close(out, torch.full((2, 3), 0.6931471805599453))
    # ... so look at the gradient sign: p - y is -0.5 for the positive.
    x = torch.zeros(2, 3, requires_grad=True)
    loss(x, torch.tensor([0, 3])).sum().backward()
    assert x.grad[0, 0] == -0.5 and (x.grad[0, 1:] == 0.5).all()
    assert (x.grad[1] == 0.5).all()  # background: every class negative


@pytest.mark.parametrize('cls', [PolyFocalLoss, Poly1StarFocalLoss])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_focal_family_gradcheck(cls, seed):
    torch.manual_seed(seed)
    logits = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    labels = random_labels(6, 4, seed)
    weight = torch.rand(6, dtype=torch.float64)
    loss = cls(epsilon=0.7, gamma=1.5)
    assert torch.autograd.gradcheck(
        lambda x: loss(x, labels, weight, avg_factor=3.0), (logits, ))


def test_polyfocal_activated_takes_probabilities():
    logits = torch.randn(12, 3, dtype=torch.float64)
    labels = random_labels(12, 4)
    a = PolyFocalLoss(epsilon=0.5)(logits, labels)
    b = PolyFocalLoss(epsilon=0.5, activated=True)(logits.sigmoid(), labels)
    torch.testing.assert_close(a, b)


# -------------------------------------------------------- cross-entropy --


@pytest.mark.parametrize('reduction', REDUCTIONS)
@pytest.mark.parametrize('use_sigmoid', [False, True])
@pytest.mark.parametrize('with_weight', [False, True])
def test_poly1_ce_eps0_equals_mmdet_ce(reduction, use_sigmoid, with_weight):
    n, k = 29, 6
    logits = torch.randn(n, k) * 2
    labels = random_labels(n, k + 1 if use_sigmoid else k)
    weight = torch.rand(n) if with_weight else None
    ours = Poly1CrossEntropyLoss(use_sigmoid=use_sigmoid, epsilon=0.0)
    theirs = CrossEntropyLoss(use_sigmoid=use_sigmoid)
    x1 = logits.clone().requires_grad_()
    x2 = logits.clone().requires_grad_()
    a = ours(x1, labels, weight, avg_factor=None, reduction_override=reduction)
    b = theirs(x2, labels, weight, reduction_override=reduction)
    torch.testing.assert_close(a, b)
    a.sum().backward()
    b.sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    if reduction == 'mean':
        torch.testing.assert_close(
            ours(logits, labels, weight, avg_factor=5.0),
            theirs(logits, labels, weight, avg_factor=5.0))


@pytest.mark.parametrize('use_sigmoid', [False, True])
def test_poly1_ce_class_weight_ignore_index_equal_mmdet(use_sigmoid):
    n, k = 40, 4
    logits = torch.randn(n, k)
    labels = random_labels(n, k)
    labels[::5] = 255
    class_weight = [0.5, 1.0, 2.0, 3.0]
    kwargs = dict(
        use_sigmoid=use_sigmoid,
        class_weight=class_weight,
        ignore_index=255,
        avg_non_ignore=True)
    ours = Poly1CrossEntropyLoss(epsilon=0.0, **kwargs)
    theirs = CrossEntropyLoss(**kwargs)
    torch.testing.assert_close(ours(logits, labels), theirs(logits, labels))


@pytest.mark.parametrize('epsilon', [-1.0, -0.2, 0.5, 1.0])
def test_poly1_ce_matches_taylor_series(epsilon):
    n, k = 20, 5
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(n, k, dtype=torch.float64, generator=g)
    labels = random_labels(n, k)
    pt = logits.softmax(1).gather(1, labels[:, None]).squeeze(1)
    assert pt.min() > 0.01
    # -log(pt) converges slowly when pt is small; 1-pt <= 0.99 needs many
    # terms, so compare the closed form and the series where pt > 0.1 and
    # the closed form alone below.
    expected = -torch.log(pt) + epsilon * (1 - pt)
    series_ok = pt > 0.1
    expected_series = taylor_poly(1 - pt[series_ok], {1: epsilon})
    out = Poly1CrossEntropyLoss(
        epsilon=epsilon, reduction='none')(logits, labels)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out[series_ok], expected_series)


def test_polyn_ce_matches_taylor_series():
    epsilons = (-0.5, 0.3, 1.2)
    logits = torch.randn(25, 4, dtype=torch.float64) * 0.5
    labels = random_labels(25, 4)
    pt = logits.softmax(1).gather(1, labels[:, None]).squeeze(1)
    expected = taylor_poly(1 - pt, {1: -0.5, 2: 0.3, 3: 1.2})
    out = PolyNCrossEntropyLoss(
        epsilons=epsilons, reduction='none')(logits, labels)
    torch.testing.assert_close(out, expected)


def test_poly1_ce_label_smoothing():
    n, k, a, eps = 30, 5, 0.1, -0.6
    logits = torch.randn(n, k, dtype=torch.float64)
    labels = random_labels(n, k)
    smoothed = F.one_hot(labels, k) * (1 - a) + a / k
    probs = logits.softmax(1)
    expected = F.cross_entropy(
        logits, labels, label_smoothing=a,
        reduction='none') + eps * (smoothed * (1 - probs)).sum(1)
    out = Poly1CrossEntropyLoss(
        epsilon=eps, label_smoothing=a, reduction='none')(logits, labels)
    torch.testing.assert_close(out, expected)


def test_poly1_ce_class_weight_and_ignore_index_softmax():
    logits = torch.randn(6, 3, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, -1, 2, 0])
    cw = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    pt = logits.softmax(1).gather(1, labels.clamp(min=0)[:, None])[:, 0]
    per_sample = cw[labels.clamp(min=0)] * (-pt.log() + 0.5 * (1 - pt))
    per_sample[3] = 0
    loss = Poly1CrossEntropyLoss(
        epsilon=0.5, class_weight=cw.tolist(), ignore_index=-1)
    torch.testing.assert_close(
        loss(logits, labels, reduction_override='none'), per_sample)
    torch.testing.assert_close(loss(logits, labels), per_sample.sum() / 6)
    loss.avg_non_ignore = True
    torch.testing.assert_close(loss(logits, labels), per_sample.sum() / 5)


def test_poly1_ce_binary_label_k_is_background():
    logits = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    loss = Poly1CrossEntropyLoss(use_sigmoid=True, epsilon=1.0)
    loss(logits, torch.tensor([3]), reduction_override='sum').backward()
    # all negative: d/dx [BCE + (1 - pt)] = p + p(1-p) = 0.75 at p = 0.5
    torch.testing.assert_close(logits.grad,
                               torch.full((1, 3), 0.75, dtype=torch.float64))


@pytest.mark.parametrize('use_sigmoid', [False, True])
def test_poly_ce_gradcheck(use_sigmoid):
    logits = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    labels = random_labels(7, 4)
    loss = PolyNCrossEntropyLoss(use_sigmoid=use_sigmoid, epsilons=(-0.8, 0.4))
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits, ))


# ------------------------------------------------------------ contract --


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('loss', [
    PolyFocalLoss(epsilon=0.5),
    Poly1StarFocalLoss(epsilon=0.2),
    Poly1CrossEntropyLoss(epsilon=-1.0)
])
def test_low_precision_inputs_computed_in_fp32(dtype, loss):
    logits = (torch.randn(64, 8) * 4).to(dtype)
    labels = random_labels(64, 8)
    out = loss(logits, labels)
    assert out.dtype == torch.float32
    expected = loss(logits.float(), labels)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('loss', [
    PolyFocalLoss(),
    Poly1StarFocalLoss(),
    Poly1CrossEntropyLoss(),
    Poly1CrossEntropyLoss(use_sigmoid=True)
])
def test_empty_batch_gives_zero_and_backward_runs(loss):
    logits = torch.zeros(0, 4, requires_grad=True)
    out = loss(logits, torch.zeros(0, dtype=torch.long))
    assert out.item() == 0.0
    out.backward()
    assert logits.grad.shape == (0, 4)


@pytest.mark.parametrize('build', [
    lambda e: PolyFocalLoss(epsilon=e),
    lambda e: Poly1StarFocalLoss(epsilon=e),
    lambda e: Poly1CrossEntropyLoss(epsilon=e),
    lambda e: PolyNCrossEntropyLoss(epsilons=(0.0, e)),
])
@pytest.mark.parametrize('bad', [-1.01, -5.0, float('nan'), float('inf')])
def test_epsilon_below_minus_one_or_not_finite_rejected(build, bad):
    with pytest.raises(
            ValueError, match=r'epsilon.* must be a finite number in \[-1,'):
        build(bad)


def test_bad_inputs_name_the_problem():
    focal, ce = PolyFocalLoss(), Poly1CrossEntropyLoss()
    x = torch.randn(4, 3)
    with pytest.raises(
            ValueError, match=r'target has values outside \[0, 3\]'):
        focal(x, torch.tensor([0, 1, 4, 3]))
    with pytest.raises(ValueError, match=r'target has values outside'):
        focal(x, torch.tensor([0, 1, -1, 3]))
    with pytest.raises(ValueError, match=r'label has values outside \[0, 2\]'):
        ce(x, torch.tensor([0, 1, 3, 2]))
    with pytest.raises(ValueError, match=r'shape \(N, C\), got \(4,\)'):
        focal(torch.randn(4), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r'shape \(4,\) to match'):
        focal(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r'one-hot \(4, 3\), got \(4, 2\)'):
        focal(x, torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r'weight must have shape'):
        focal(x, torch.tensor([0, 1, 2, 3]), weight=torch.ones(3))
    with pytest.raises(TypeError, match='integers'):
        ce(x, torch.tensor([0., 1., 2., 0.]))
    with pytest.raises(ValueError, match='reduction'):
        focal(x, torch.tensor([0, 1, 2, 3]), reduction_override='avg')
    with pytest.raises(ValueError, match='sigmoid loss'):
        PolyFocalLoss(use_sigmoid=False)
    with pytest.raises(ValueError, match='class_weight has 2 entries'):
        Poly1CrossEntropyLoss(class_weight=[1., 2.])(x, torch.tensor([0] * 4))


def test_losses_build_from_registry():
    for cfg in (dict(type='PolyFocalLoss', epsilon=-1.0),
                dict(type='Poly1StarFocalLoss', epsilon=0.2),
                dict(type='Poly1CrossEntropyLoss', epsilon=-1.0),
                dict(type='PolyNCrossEntropyLoss', epsilons=(-1., 0.5))):
        loss = MODELS.build(cfg)
        assert type(loss).__name__ == cfg['type']
    assert MODELS.build(dict(type='Poly1CrossEntropyLoss')).epsilon == -1.0


# ------------------------------------------------------------ bad input --


@pytest.mark.parametrize('kwargs,name', [
    (dict(gamma=float('nan')), 'gamma'),
    (dict(gamma=float('inf')), 'gamma'),
    (dict(gamma=-0.5), 'gamma'),
    (dict(alpha=1.5), 'alpha'),
    (dict(alpha=float('nan')), 'alpha'),
    (dict(loss_weight=float('nan')), 'loss_weight'),
    (dict(loss_weight=-1.0), 'loss_weight'),
])
@pytest.mark.parametrize('cls', [PolyFocalLoss, Poly1StarFocalLoss])
def test_focal_constructor_numbers_checked(cls, kwargs, name):
    with pytest.raises(ValueError, match=f'^{name} must be a finite number'):
        cls(**kwargs)


@pytest.mark.parametrize('kwargs,match', [
    (dict(class_weight=[1.0, float('nan')]), r'class_weight\[1\]'),
    (dict(class_weight=[1.0, -2.0]), r'class_weight\[1\]'),
    (dict(loss_weight=float('inf')), 'loss_weight'),
    (dict(label_smoothing=float('nan')), 'label_smoothing'),
])
def test_ce_constructor_numbers_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Poly1CrossEntropyLoss(**kwargs)


@pytest.mark.parametrize('dtype', [torch.int32, torch.uint8, torch.int16])
@pytest.mark.parametrize('loss', [
    PolyFocalLoss(epsilon=0.5),
    Poly1CrossEntropyLoss(epsilon=-0.5),
    Poly1CrossEntropyLoss(use_sigmoid=True),
    PolyNCrossEntropyLoss(epsilons=(0.2, 0.1), label_smoothing=0.1)
])
def test_narrow_integer_labels_equal_int64(dtype, loss):
    logits = torch.randn(20, 4)
    labels = random_labels(20, 4)
    torch.testing.assert_close(
        loss(logits, labels.to(dtype)), loss(logits, labels))


@pytest.mark.parametrize('loss,name', [(PolyFocalLoss(), 'target'),
                                       (Poly1CrossEntropyLoss(), 'label')])
def test_labels_and_weights_on_another_device_named(loss, name):
    """'meta' stands in for a second device: the check is the same."""
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match=f'^{name} is on meta but '):
        loss(logits, labels.to('meta'))
    with pytest.raises(ValueError, match='^weight is on meta but '):
        loss(logits, labels, weight=torch.ones(4, device='meta'))


@pytest.mark.parametrize('loss', [PolyFocalLoss(), Poly1CrossEntropyLoss()])
@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_non_finite_weight_rejected(loss, bad):
    weight = torch.ones(4)
    weight[2] = bad
    with pytest.raises(ValueError, match='^weight has NaN/Inf'):
        loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), weight)


@pytest.mark.parametrize('bad', [2.0, -1.0, float('nan')])
def test_one_hot_targets_outside_zero_one_rejected(bad):
    target = F.one_hot(random_labels(6, 4), 4)[:, :3].float()
    target[1, 1] = bad
    with pytest.raises(
            ValueError, match=r'^target \(one-hot or soft\).*\[0, 1\]'):
        PolyFocalLoss()(torch.randn(6, 3), target)
    soft = target.clone()
    soft[1, 1] = 0.3  # soft targets in [0, 1] are fine
    assert torch.isfinite(PolyFocalLoss()(torch.randn(6, 3), soft))


def saturated_logits():
    """float32 logits whose pt is exactly 1 (and exactly 0), with ordinary
    ones between."""
    return torch.tensor([[40., -40., 0.3], [-200., 200., -1.2],
                         [2.0, -0.5, 1e-3]])


@pytest.mark.parametrize('gamma', [0.0, 0.5])
def test_gamma_below_one_has_finite_gradient_at_pt_one(gamma):
    logits = saturated_logits().requires_grad_()
    labels = torch.tensor([0, 1, 3])  # pt = 1 exactly at (0,0) and (1,1)
    assert logits[0, 0].sigmoid() == 1 and logits[1, 1].sigmoid() == 1
    PolyFocalLoss(gamma=gamma, epsilon=1.0)(logits, labels).backward()
    assert torch.isfinite(logits.grad).all()
    # softmax form: pt = 1 exactly for the first sample
    logits = torch.tensor([[100., 0., 0.], [0.5, 0.2, -0.1]],
                          requires_grad=True)
    labels = torch.tensor([0, 2])
    assert logits.log_softmax(1)[0, 0] == 0
    AdaptiveFocalLoss(
        gammas=(gamma, gamma), thresholds=(0.2, ))(logits, labels).backward()
    assert torch.isfinite(logits.grad).all()


def focal_oracle(logits, labels, gamma, alpha, epsilon):
    """PolyFocal in float64 from its closed form, with -log(pt) and 1 - pt
    written as softplus(-z) and sigmoid(-z) of the signed logit z."""
    c = logits.size(1)
    y = F.one_hot(labels, c + 1)[:, :c].double()
    z = logits.double() * (2 * y - 1)  # pt = sigmoid(z)
    one_minus_pt = torch.sigmoid(-z)
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    return alpha_t * (
        one_minus_pt**gamma * F.softplus(-z) +
        epsilon * one_minus_pt**(gamma + 1))


@pytest.mark.parametrize('gamma', [1.0, 2.0, 2.5])
def test_gamma_at_least_one_unchanged_against_float64_oracle(gamma):
    logits = torch.cat([saturated_logits(), torch.randn(20, 3) * 4])
    labels = torch.cat([torch.tensor([0, 1, 3]), random_labels(20, 4)])
    x = logits.clone().requires_grad_()
    ours = PolyFocalLoss(gamma=gamma, epsilon=0.5, reduction='none')(x, labels)
    x64 = logits.double().requires_grad_()
    want = focal_oracle(x64, labels, gamma, 0.25, 0.5)
    torch.testing.assert_close(ours.double(), want, rtol=1e-5, atol=1e-7)
    ours.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-5, atol=1e-7)
