"""Training-safe semantics of DR's expectations, for the op (CPU and CUDA)
and the reference: a NaN/Inf logit anywhere in an image makes that image's
E- and E+ (and its gradient) NaN, never an exception and never a finite
number that left elements out, while the other images are untouched; with
MMDET_LOSSPLUG_EAGER_CHECKS=1 it raises at once with the count. Labels
outside [0, C] and NaN weights stay errors, also for C = 0."""
import pytest
import torch
import torch.nn.functional as F

from mmdet_lossplug.input_checks import set_eager_checks
from mmdet_lossplug.ops import HAS_EXT, dr_expectation
from ..helpers import DEVICES

IMPLS = [
    pytest.param(
        'op',
        marks=pytest.mark.skipif(
            not HAS_EXT, reason='mmdet_lossplug._ext is not built')),
    'reference',
]
# (anchor, class) of the bad logit in image 1, by its role there.
WHERE = {'negative': (5, 3), 'positive': (7, 2), 'ignored anchor': (9, 0)}


def make_case(device, dtype, anchors=3000, classes=6):
    """Three images; anchor 7 of image 1 is a positive of class 2, anchor
    9 ignored. 3000 anchors: several chunks per image for the op."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, anchors, classes, generator=g) * 3
    labels = torch.randint(0, classes + 1, (3, anchors), generator=g)
    weights = (torch.rand(3, anchors, generator=g) > 0.1).float()
    labels[1, 7], weights[1, 7], weights[1, 9] = 2, 1, 0
    return logits.to(device, dtype), labels.to(device), weights.to(device)


@pytest.fixture
def eager_checks():
    set_eager_checks(True)
    yield
    set_eager_checks(False)


def expectations_and_grad(logits, labels, weights, impl):
    """E-, E+ and the gradient of DR's logistic loss (sum over images)."""
    x = logits.clone().requires_grad_()
    e_neg, e_pos = dr_expectation(x, labels, weights, 1.0, 0.1, impl=impl)
    loss = F.softplus(6 * (e_neg - e_pos + 0.5)).sum()
    grad, = torch.autograd.grad(loss, x)
    return e_neg, e_pos, grad


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
@pytest.mark.parametrize('where', list(WHERE))
@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_logit_makes_its_image_nan(device, impl, dtype, where,
                                              value):
    logits, labels, weights = make_case(device, dtype)
    clean = expectations_and_grad(logits, labels, weights, impl)
    anchor, cls = WHERE[where]
    logits[1, anchor, cls] = value
    e_neg, e_pos, grad = expectations_and_grad(logits, labels, weights, impl)
    assert e_neg[1].isnan() and e_pos[1].isnan()
    # The image's gradient is NaN wherever an anchor counts (the op leaves
    # ignored anchors at 0; the reference's autograd gives NaN there too).
    counted = (weights[1] > 0)[:, None].expand_as(grad[1])
    assert grad[1][counted].isnan().all()
    # The other images are exactly as without the bad logit.
    for got, want in zip((e_neg, e_pos, grad), clean):
        assert torch.equal(got[0::2], want[0::2])


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('impl', IMPLS)
def test_eager_checks_raise_with_the_count(device, impl, eager_checks):
    logits, labels, weights = make_case(device, torch.float32)
    logits[0, 1, 1] = float('nan')
    logits[2, 5, 0] = float('inf')
    with pytest.raises(
            ValueError, match='logits has 2 NaN/Inf values of 54000'):
        dr_expectation(logits, labels, weights, 1.0, 0.1, impl=impl)


@pytest.mark.parametrize('impl', IMPLS)
def test_bad_labels_and_nan_weights_still_raise(impl):
    logits, labels, weights = make_case('cpu', torch.float32)
    logits[0, 1, 1] = float('nan')  # not what is reported
    bad = labels.clone()
    bad[2, 4] = 7
    with pytest.raises(ValueError, match='label'):
        dr_expectation(logits, bad, weights, 1.0, 0.1, impl=impl)
    weights[1, 3] = float('nan')
    with pytest.raises(ValueError, match='label_weights has .*NaN'):
        dr_expectation(logits, labels, weights, 1.0, 0.1, impl=impl)


@pytest.mark.parametrize('impl', IMPLS)
def test_zero_classes_check_labels_and_weights(impl):
    """C = 0 with A > 0: no elements, but the labels (only 0, the
    background, is in range) and weights are still checked."""
    logits = torch.zeros(2, 20, 0)
    labels = torch.zeros(2, 20, dtype=torch.long)
    e_neg, e_pos = dr_expectation(logits, labels, None, 1.0, 0.1, impl=impl)
    assert e_neg.tolist() == [0, 0] and e_pos.tolist() == [1, 1]
    labels[1, 3] = 1
    with pytest.raises(ValueError, match=r'label'):
        dr_expectation(logits, labels, None, 1.0, 0.1, impl=impl)


@pytest.mark.skipif(
    not (HAS_EXT and torch.cuda.is_available()), reason='needs a GPU')
def test_cuda_status_counts_bad_input_without_raising():
    """The CUDA op itself never raises on values: it counts them (the
    entry point turns bad labels and weights into a device assert)."""
    logits, labels, weights = make_case('cuda', torch.float32)
    logits[0, 1, 1] = float('nan')
    logits[2, 5, :] = float('inf')
    labels[1, 3] = -1
    labels[2, 4] = 99
    weights[0, 2] = float('nan')
    _, _, _, status = torch.ops.mmdet_lossplug.dr_expectation(
        logits, labels, weights, 1.0, 0.1)
    assert status.tolist() == [7, 2, 1]
    empty = torch.zeros(2, 20, 0, device='cuda')
    zero_labels = torch.zeros(2, 20, dtype=torch.long, device='cuda')
    zero_labels[1, 3] = 1
    nan_weights = torch.ones(2, 20, device='cuda')
    nan_weights[0, 0] = float('nan')
    _, _, _, status = torch.ops.mmdet_lossplug.dr_expectation(
        empty, zero_labels, nan_weights, 1.0, 0.1)
    assert status.tolist() == [0, 1, 1]
