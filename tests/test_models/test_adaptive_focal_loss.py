"""Sample-dependent focal loss against per-sample closed forms and plain
focal loss; Proposition 2's gamma against g(p0, gamma) = 1."""
import math

import pytest
import torch
from mmdet.models.losses import FocalLoss

from mmdet_lossplug.models.losses import (AdaptiveFocalLoss,
                                          focal_gamma_for_threshold)


def g(p, gamma):
    """Mukhoti et al., Proposition 2: focal/CE gradient-norm ratio."""
    return (1 - p)**gamma - gamma * p * (1 - p)**(gamma - 1) * math.log(p)


def test_gamma_for_threshold_values_and_fixed_point():
    assert round(focal_gamma_for_threshold(0.2), 2) == 4.85
    assert round(focal_gamma_for_threshold(0.25), 2) == 3.07
    for p0 in (0.05, 0.1, 0.2, 0.3, 0.4):
        assert g(p0, focal_gamma_for_threshold(p0)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match='p0'):
        focal_gamma_for_threshold(0.7)


def softmax_focal(logits, labels, gammas):
    pt = logits.softmax(1).gather(1, labels[:, None]).squeeze(1)
    return -(1 - pt)**gammas * pt.log()


def test_softmax_fla53_per_sample_closed_form():
    torch.manual_seed(0)
    logits = torch.randn(64, 5, dtype=torch.float64) * 2
    labels = torch.randint(0, 5, (64, ))
    pt = logits.softmax(1).gather(1, labels[:, None]).squeeze(1)
    assert (pt < 0.2).any() and (pt >= 0.2).any()  # both bands present
    gammas = torch.where(pt < 0.2, 5.0, 3.0).double()
    out = AdaptiveFocalLoss(reduction='none')(logits, labels)
    torch.testing.assert_close(out, softmax_focal(logits, labels, gammas))


def test_softmax_fla532_bands():
    logits = torch.log(
        torch.tensor([[0.1, 0.9], [0.3, 0.7], [0.8, 0.2]],
                     dtype=torch.float64))
    labels = torch.tensor([0, 0, 0])  # pt = 0.1, 0.3, 0.8
    loss = AdaptiveFocalLoss(gammas=(5, 3, 2), thresholds=(0.2, 0.5))
    out = loss(logits, labels, reduction_override='none')
    want = softmax_focal(logits, labels,
                         torch.tensor([5., 3., 2.], dtype=torch.float64))
    torch.testing.assert_close(out, want)


@pytest.mark.parametrize('band,gamma', [('low', 5.0), ('high', 3.0)])
def test_sigmoid_equals_mmdet_focal_within_one_band(band, gamma):
    torch.manual_seed(1)
    labels = torch.randint(0, 4, (50, ))
    onehot = torch.nn.functional.one_hot(labels, 5)[:, :4].bool()
    magnitude = torch.rand(50, 4) * 3 + 1.5  # |logit| > 1.5: pt off 0.2
    sign = onehot.float() * 2 - 1  # positive logit for the target class
    logits = magnitude * (sign if band == 'high' else -sign)
    ours = AdaptiveFocalLoss(use_sigmoid=True, alpha=0.25)(logits, labels)
    theirs = FocalLoss(gamma=gamma, alpha=0.25)(logits, labels)
    torch.testing.assert_close(ours, theirs)


def test_auto_gammas_and_gradcheck():
    loss = AdaptiveFocalLoss(gammas='auto', p0=0.25)
    assert loss.gammas[0] == pytest.approx(3.07, abs=5e-3)
    assert loss.thresholds == (0.25, )
    logits = torch.tensor([[2.0, -1.0, 0.5], [-2.0, 1.0, 0.3]],
                          dtype=torch.float64,
                          requires_grad=True)
    labels = torch.tensor([0, 0])  # pt ~ 0.75 and ~0.04: both bands
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits, ))


def test_bad_arguments():
    with pytest.raises(ValueError, match='thresholds'):
        AdaptiveFocalLoss(gammas=(5, 3), thresholds=(0.2, 0.5))
    with pytest.raises(ValueError, match='increase'):
        AdaptiveFocalLoss(gammas=(5, 3, 2), thresholds=(0.5, 0.2))
    with pytest.raises(ValueError, match='p0'):
        AdaptiveFocalLoss(gammas='auto')
    with pytest.raises(ValueError, match='sigmoid'):
        AdaptiveFocalLoss(alpha=0.25)
    with pytest.raises(
            ValueError, match=r'target has values outside \[0, 2\]'):
        AdaptiveFocalLoss()(torch.zeros(2, 3), torch.tensor([0, 3]))


@pytest.mark.parametrize('kwargs,match', [
    (dict(gammas=(float('nan'), 3.0)), r'gammas\[0\]'),
    (dict(gammas=(5.0, float('inf'))), r'gammas\[1\]'),
    (dict(gammas=(5.0, -1.0)), r'gammas\[1\]'),
    (dict(thresholds=(float('nan'), )), 'thresholds'),
    (dict(use_sigmoid=True, alpha=1.5), 'alpha'),
    (dict(use_sigmoid=True, alpha=-0.1), 'alpha'),
    (dict(use_sigmoid=True, alpha=float('nan')), 'alpha'),
    (dict(loss_weight=float('nan')), 'loss_weight'),
    (dict(gammas='auto', p0=float('nan')), 'p0'),
])
def test_constructor_numbers_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaptiveFocalLoss(**kwargs)


def test_gammas_that_are_not_numbers_are_named():
    with pytest.raises(
            ValueError,
            match="gammas must be a sequence of "
            "numbers or 'auto', got 'bogus'"):
        AdaptiveFocalLoss(gammas='bogus')
    with pytest.raises(
            TypeError, match=r"gammas\[1\] must be a number, "
            "got 'x'"):
        AdaptiveFocalLoss(gammas=(5.0, 'x'))


def test_thresholds_that_are_not_numbers_are_named():
    with pytest.raises(
            TypeError, match=r"thresholds\[0\] must be a number, "
            "got 'b'"):
        AdaptiveFocalLoss(thresholds=('b', ))
    with pytest.raises(
            TypeError, match=r"thresholds\[1\] must be a number, "
            "got None"):
        AdaptiveFocalLoss(gammas=(5, 3, 2), thresholds=[0.2, None])
    for bad in ('b', 0.2):
        with pytest.raises(
                TypeError, match='thresholds must be a sequence of numbers'):
            AdaptiveFocalLoss(thresholds=bad)


@pytest.mark.parametrize('use_sigmoid', [False, True])
def test_labels_of_any_integer_dtype_device_and_weights(use_sigmoid):
    loss = AdaptiveFocalLoss(use_sigmoid=use_sigmoid)
    logits = torch.randn(10, 3)
    labels = torch.randint(0, 3, (10, ))
    for dtype in (torch.int32, torch.uint8):
        torch.testing.assert_close(
            loss(logits, labels.to(dtype)), loss(logits, labels))
    with pytest.raises(ValueError, match='^target is on meta but '):
        loss(logits, labels.to('meta'))
    weight = torch.ones(10)
    weight[0] = float('nan')
    with pytest.raises(ValueError, match='^weight has NaN/Inf'):
        loss(logits, labels, weight)
