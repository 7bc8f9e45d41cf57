"""The compiled op (E-, E+ and the gradient) against the float64 oracle of
tests/dr_oracle.py (the paper's formulas in plain Python) at extreme logits
(-89, -200, +-1e4: an exp(-x) overflows there in float32) and temperatures
from 1/1000 to 1, in every dtype."""
from functools import partial

import pytest
import torch

from mmdet_lossplug.ops import HAS_EXT, dr_expectation
from ..dr_oracle import expectation_grads, expectations
from ..helpers import DEVICES

pytestmark = pytest.mark.skipif(
    not HAS_EXT, reason='mmdet_lossplug._ext is not built')
dr_expectation_op = partial(dr_expectation, impl='op')
# Unit roundoff of the accumulation, and of the gradient's own dtype.
ACC_EPS = {torch.float64: 2.0**-53}
GRAD_EPS = {
    torch.float32: 2.0**-24,
    torch.float64: 2.0**-53,
    torch.float16: 2.0**-11,
    torch.bfloat16: 2.0**-8,
}
G_NEG, G_POS = [2.0, -0.5, 1.0], [3.0, 1.5, -1.0]


def extreme_case(dtype):
    """Three images of 40 anchors x 6 classes with extreme logits among
    ordinary ones; image 2 has one positive only, at -200."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 40, 6, generator=g) * 3
    labels = torch.randint(0, 7, (3, 40), generator=g)
    weights = (torch.rand(3, 40, generator=g) > 0.2).float()
    labels[0, 0], weights[0, 0] = 1, 1
    logits[0, 0, 1] = -200  # a positive
    logits[0, 0, 2] = -89  # a negative
    logits[0, 1, 3] = 1e4
    labels[1, 2], weights[1, 2] = 0, 1
    logits[1, 2, 0] = -1e4  # a positive
    logits[1, 3, :] = torch.tensor([1e4, -1e4, -89, -200, 89, 200])
    labels[2] = 6
    labels[2, 5], weights[2, 5] = 4, 1
    logits[2, 5, 4] = -200
    return logits.to(dtype), labels, weights


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', list(GRAD_EPS))
@pytest.mark.parametrize('lam', [1.0, 0.1, 1 / 80, 1 / 200, 1e-3])
def test_op_equals_float64_oracle_at_extreme_logits(device, dtype, lam):
    logits, labels, weights = extreme_case(dtype)
    lam_pos, lam_neg = lam, lam / 2
    x = logits.to(device, copy=True).requires_grad_()
    e_neg, e_pos = dr_expectation_op(x, labels.to(device), weights.to(device),
                                     lam_pos, lam_neg)
    grad, = torch.autograd.grad(
        (torch.tensor(G_NEG, device=device) * e_neg +
         torch.tensor(G_POS, device=device) * e_pos).sum(), x)
    exact = logits.double()  # the values the op was given
    want_neg, want_pos = expectations(exact, labels, weights, lam_pos, lam_neg)
    want_grad = torch.tensor(
        expectation_grads(exact, labels, weights, lam_pos, lam_neg, G_NEG,
                          G_POS),
        dtype=torch.float64)
    # Both accumulate in float32 (float64 for float64 logits). E's error
    # stays at a few roundoffs; the gradient's relative error grows like
    # 1 / lam (q_j carries exp of p / lam; its factor (p - E) / lam), plus
    # one rounding to its dtype.
    eps = ACC_EPS.get(dtype, 2.0**-24)
    for got, want in ((e_neg, want_neg), (e_pos, want_pos)):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(
            got.double().cpu(),
            torch.tensor(want, dtype=torch.float64),
            rtol=32 * eps,
            atol=32 * eps)
    err = (grad.double().cpu() - want_grad).abs().max() / want_grad.abs().max()
    assert torch.isfinite(grad).all()
    assert err <= 2 * GRAD_EPS[dtype] + 8 * eps / min(lam_pos, lam_neg), err
