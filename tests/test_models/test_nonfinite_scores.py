"""A NaN or infinite score makes every loss non-finite, never an exception
and never a finite number that left it out (PyTorch's and MMDetection's
rule for training losses): AMP's GradScaler then skips the step and lowers
its scale, and training goes on. Labels out of range stay errors; eager
checks turn non-finite scores into an error with their count."""
import math

import pytest
import torch
import torch.nn as nn

from mmdet_lossplug.input_checks import set_eager_checks
from mmdet_lossplug.models.losses import (AdaptiveFocalLoss,
                                          Poly1CrossEntropyLoss,
                                          Poly1StarFocalLoss, PolyFocalLoss,
                                          PolyNCrossEntropyLoss)
from ..helpers import needs_cpu_grad_scaler

NUM_CLASSES = 3
# (loss, highest valid label): sigmoid losses take C as background.
LOSSES = {
    'PolyFocal': (PolyFocalLoss(epsilon=1.0), NUM_CLASSES),
    'Poly1StarFocal': (Poly1StarFocalLoss(epsilon=0.2), NUM_CLASSES),
    'Poly1CE': (Poly1CrossEntropyLoss(), NUM_CLASSES - 1),
    'Poly1CE-smoothed':
    (Poly1CrossEntropyLoss(label_smoothing=0.1), NUM_CLASSES - 1),
    'Poly1CE-sigmoid': (Poly1CrossEntropyLoss(use_sigmoid=True), NUM_CLASSES),
    'PolyNCE': (PolyNCrossEntropyLoss(epsilons=(1.0, -0.5)), NUM_CLASSES - 1),
    'AdaptiveFocal-softmax': (AdaptiveFocalLoss(), NUM_CLASSES - 1),
    'AdaptiveFocal-sigmoid': (AdaptiveFocalLoss(use_sigmoid=True,
                                                alpha=0.25), NUM_CLASSES),
}
# (value, column) put into sample 0, whose label is 1. A -inf logit on
# another class is an exact zero probability for a softmax over classes
# (F.cross_entropy gives a finite loss for it too); on the true class it is
# as non-finite as NaN and +inf anywhere.
BAD_SCORES = {
    'nan': (float('nan'), 2),
    '+inf': (float('inf'), 2),
    '-inf-true-class': (float('-inf'), 1),
}


@pytest.fixture
def eager_checks():
    set_eager_checks(True)
    yield
    set_eager_checks(False)


def scores_with(bad: float, column: int):
    torch.manual_seed(0)
    logits = torch.randn(6, NUM_CLASSES, requires_grad=False)
    labels = torch.tensor([1, 0, 2, 1, 0, 2])
    logits[0, column] = bad  # sample 0's label is 1
    return logits.requires_grad_(), labels


@pytest.mark.parametrize('bad', BAD_SCORES, ids=list(BAD_SCORES))
@pytest.mark.parametrize('name', LOSSES, ids=list(LOSSES))
def test_a_non_finite_score_gives_a_non_finite_loss(name, bad):
    loss_fn, _ = LOSSES[name]
    logits, labels = scores_with(*BAD_SCORES[bad])
    loss = loss_fn(logits, labels)
    assert not torch.isfinite(loss), f'{name}: finite loss {loss.item()}'
    loss.backward()  # no exception on the way back either
    finite = loss_fn(logits.detach().nan_to_num(0.0, 0.0, 0.0), labels)
    assert torch.isfinite(finite)


@pytest.mark.parametrize('name', LOSSES, ids=list(LOSSES))
def test_eager_checks_raise_with_the_count(name, eager_checks):
    loss_fn, _ = LOSSES[name]
    logits, labels = scores_with(float('nan'), 1)
    logits.data[3, 2] = float('inf')
    with pytest.raises(ValueError, match='has 2 NaN/Inf values of 18'):
        loss_fn(logits, labels)


@pytest.mark.parametrize('name', LOSSES, ids=list(LOSSES))
def test_labels_out_of_range_stay_errors(name):
    loss_fn, max_label = LOSSES[name]
    logits, labels = scores_with(0.0, 1)
    labels[2] = max_label + 1
    with pytest.raises(ValueError, match='values outside'):
        loss_fn(logits, labels)


@needs_cpu_grad_scaler
@pytest.mark.parametrize('name',
                         ['PolyFocal', 'Poly1CE', 'AdaptiveFocal-softmax'])
def test_grad_scaler_skips_the_step_of_a_non_finite_score(name):
    """Mixed-precision training on the CPU (bf16 autocast, GradScaler): the
    iteration whose score overflowed to inf changes no weight and halves the
    scale; the next iteration trains again."""
    loss_fn, _ = LOSSES[name]
    torch.manual_seed(0)
    model = nn.Linear(4, NUM_CLASSES)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0**10)
    features = torch.randn(6, 4)
    labels = torch.tensor([1, 0, 2, 1, 0, 2])
    weights_after, scales = [], []
    for overflow in (False, True, False):
        optimizer.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            logits = model(features)
        if overflow:  # what an fp16 overflow in the head leaves behind
            logits = logits + torch.tensor([math.inf, 0, 0, 0, 0, 0])[:, None]
        loss = loss_fn(logits, labels)
        assert torch.isfinite(loss) != overflow
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        weights_after.append(model.weight.detach().clone())
        scales.append(scaler.get_scale())
    assert torch.equal(weights_after[1], weights_after[0])  # step skipped
    assert scales[1] == scales[0] / 2
    assert not torch.equal(weights_after[2], weights_after[1])  # trains on
