"""The pure-PyTorch reference of (E-, E+) against the brute-force oracle,
the paper's closed-form gradient (appendix A) and gradcheck."""
import math

import pytest
import torch

from mmdet_lossplug.ops import dr_expectation, dr_expectation_reference
from ..dr_oracle import expectations

LAM_POS, LAM_NEG = 1.0, 0.1 / math.log(3.5)


def make_inputs(batch=3, anchors=57, classes=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, anchors, classes, generator=g, dtype=dtype) * 3
    labels = torch.randint(0, classes + 1, (batch, anchors), generator=g)
    labels[labels < classes] = torch.where(
        torch.rand(labels.shape, generator=g) < 0.5, classes,
        labels)[labels < classes]  # mostly background, as in detection
    weights = (torch.rand(batch, anchors, generator=g) > 0.2).float()
    return logits, labels, weights


@pytest.mark.parametrize('seed', range(3))
def test_reference_matches_oracle(seed):
    logits, labels, weights = make_inputs(seed=seed)
    labels[1] = logits.size(-1)  # an image without positives
    weights[2, :] = 0  # an image with every anchor ignored
    e_neg, e_pos = dr_expectation_reference(logits, labels, weights, LAM_POS,
                                            LAM_NEG)
    want_neg, want_pos = expectations(logits, labels, weights, LAM_POS,
                                      LAM_NEG)
    torch.testing.assert_close(e_neg.double(),
                               torch.tensor(want_neg, dtype=torch.float64))
    torch.testing.assert_close(e_pos.double(),
                               torch.tensor(want_pos, dtype=torch.float64))
    assert e_pos[1] == 1.0 and e_pos[2] == 1.0 and e_neg[2] == 0.0


def test_class_zero_positive_label_c_never():
    logits = torch.tensor([[[2.0, -1.0], [0.5, 0.3]]])
    e_neg, e_pos = dr_expectation_reference(logits, torch.tensor([[0, 2]]),
                                            None, LAM_POS, LAM_NEG)
    torch.testing.assert_close(e_pos, torch.sigmoid(torch.tensor([2.0])))
    # Negatives: class 1 of anchor 0 and both classes of anchor 1.
    p = torch.sigmoid(torch.tensor([-1.0, 0.5, 0.3]))
    q = torch.softmax(p / LAM_NEG, 0)
    torch.testing.assert_close(e_neg, (q * p).sum()[None])


@pytest.mark.parametrize('which', ['neg', 'pos'])
def test_gradient_matches_paper_appendix_a(which):
    """dE/dp_j = q_j (1 + s (p_j - E) / lam), s = +1 (neg), -1 (pos)."""
    logits, labels, weights = make_inputs(batch=1, anchors=40, classes=3)
    logits.requires_grad_()
    e_neg, e_pos = dr_expectation_reference(logits, labels, weights, LAM_POS,
                                            LAM_NEG)
    (e_neg if which == 'neg' else e_pos).sum().backward()
    p = logits.detach().sigmoid()
    is_label = labels[..., None] == torch.arange(3)
    valid = (weights > 0)[..., None]
    mask = (~is_label if which == 'neg' else is_label) & valid
    sign, lam = (1, LAM_NEG) if which == 'neg' else (-1, LAM_POS)
    q = torch.zeros_like(p)
    q[mask] = torch.softmax(sign * p[mask] / lam, 0)
    expectation = (q * p).sum()
    d_e_d_p = q * (1 + sign * (p - expectation) / lam)
    torch.testing.assert_close(logits.grad, d_e_d_p * p * (1 - p))


@pytest.mark.parametrize('seed', range(3))
def test_reference_gradcheck(seed):
    logits, labels, weights = make_inputs(
        batch=2, anchors=9, classes=3, seed=seed)
    logits.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: dr_expectation_reference(x, labels, weights, 0.7, 0.2),
        (logits, ))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_logits_accumulate_in_fp32(dtype):
    logits, labels, weights = make_inputs(
        anchors=5000, classes=8, dtype=torch.float32)
    logits = (logits * 4).to(dtype)  # exponents up to 1/lam_neg ~ 12.5
    e_neg, e_pos = dr_expectation(logits, labels, weights, LAM_POS, LAM_NEG)
    assert e_neg.dtype == torch.float32
    want_neg, want_pos = dr_expectation_reference(logits.float(), labels,
                                                  weights, LAM_POS, LAM_NEG)
    torch.testing.assert_close(e_neg, want_neg)
    torch.testing.assert_close(e_pos, want_pos)


def test_extreme_logits_stay_finite():
    logits, labels, weights = make_inputs(dtype=torch.float32)
    logits = logits.sign() * 50
    logits.requires_grad_()
    e_neg, e_pos = dr_expectation(logits, labels, weights, LAM_POS, LAM_NEG)
    (e_neg - e_pos).sum().backward()
    assert torch.isfinite(e_neg).all() and torch.isfinite(e_pos).all()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize('fn', [dr_expectation, dr_expectation_reference])
def test_bad_inputs_raise_clear_errors(fn):
    """The public entry point and the exported reference check alike (a
    non-finite logit is no error: test_dr_non_finite_logits.py)."""
    logits, labels, weights = make_inputs(dtype=torch.float32)
    with pytest.raises(ValueError, match=r'\(B, A, C\), got \(3, 57\)'):
        fn(logits[..., 0], labels, weights, 1.0, 0.1)
    with pytest.raises(ValueError, match=r'labels must have shape \(3, 57\)'):
        fn(logits, labels[:, :5], weights, 1.0, 0.1)
    # (1, A) labels must not broadcast over the images.
    with pytest.raises(ValueError, match=r'labels must have shape \(3, 57\)'):
        fn(logits, labels[:1], weights, 1.0, 0.1)
    with pytest.raises(ValueError, match='label_weights must have shape'):
        fn(logits, labels, weights[0], 1.0, 0.1)
    with pytest.raises(TypeError, match='labels must be integers'):
        fn(logits, labels.float(), weights, 1.0, 0.1)
    for value in (5, -1):  # -1 must not read as background
        bad = labels.clone()
        bad[0, 0] = value
        with pytest.raises(ValueError, match=r'outside \[0, 4\]'):
            fn(logits, bad, weights, 1.0, 0.1)
    nan_weights = weights.clone()
    nan_weights[0, 3] = float('nan')
    with pytest.raises(ValueError, match='label_weights has .*NaN'):
        fn(logits, labels, nan_weights, 1.0, 0.1)
    for lam in (0.0, -1.0, float('nan'), float('inf'), 1e-39):
        with pytest.raises(ValueError, match='lam_neg must be a finite'):
            fn(logits, labels, weights, 1.0, lam)


def test_zero_anchors_give_the_empty_expectations():
    """A = 0: E- = 0 and E+ = 1 per image, as the op gives, with a
    gradient (of shape (B, 0, C))."""
    logits = torch.zeros(2, 0, 5, requires_grad=True)
    labels = torch.zeros(2, 0, dtype=torch.long)
    e_neg, e_pos = dr_expectation_reference(logits, labels, None, 1.0, 0.1)
    assert e_neg.tolist() == [0, 0] and e_pos.tolist() == [1, 1]
    (e_neg + e_pos).sum().backward()
    assert logits.grad.shape == (2, 0, 5)
