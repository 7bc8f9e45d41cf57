import pytest
import torch

from mmdet_lossplug.input_checks import (check_binary_targets, check_finite,
                                         check_label_range, check_number,
                                         check_without_sync)
from mmdet_lossplug.torch_features import HAS_COMPILED_ASSERTS


def test_check_without_sync_raises_at_once_on_cpu():
    check_without_sync(torch.tensor(True), 'never raised')
    with pytest.raises(ValueError, match='logits have NaN'):
        check_without_sync(
            torch.isfinite(torch.tensor([1.0, float('nan')])).all(),
            'logits have NaN')


def test_check_without_sync_compiles_and_still_raises():
    """Inductor keeps the check in the graph from torch 2.9 (a
    RuntimeError from the compiled assert); before, Inductor would drop it,
    so the check breaks the graph and raises eagerly (a ValueError)."""
    torch._dynamo.reset()

    def double_finite(x):
        check_without_sync(torch.isfinite(x).all(), 'x has NaN/Inf')
        return x * 2

    compiled = torch.compile(double_finite, fullgraph=HAS_COMPILED_ASSERTS)
    assert torch.equal(compiled(torch.ones(3)), torch.full((3, ), 2.0))
    error = RuntimeError if HAS_COMPILED_ASSERTS else ValueError
    with pytest.raises(error, match='x has NaN/Inf'):
        compiled(torch.tensor([1.0, float('inf')]))


@pytest.mark.parametrize('value,kwargs,match', [
    (float('nan'), dict(), r'gamma must be a finite number in \[-inf, inf\)'),
    (float('inf'), dict(low=0.0), r'\[0, inf\), got inf'),
    (0.0, dict(low=0.0, low_open=True), r'\(0, inf\), got 0.0'),
    (1.5, dict(low=0.0, high=1.0), r'\[0, 1\], got 1.5'),
])
def test_check_number_rejects_non_finite_and_out_of_range(
        value, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_number(value, 'gamma', **kwargs)


def test_check_number_returns_a_float():
    value = check_number(1, 'L', low=0.0, low_open=True)
    assert value == 1.0 and type(value) is float


def test_label_range_with_ignore_index_and_integer_dtypes():
    labels = torch.tensor([0, 3, 255, 1], dtype=torch.uint8)
    check_label_range(labels, 3, ignore_index=255)
    with pytest.raises(
            ValueError,
            match=r'^labels has values outside \[0, 2\] other '
            'than ignore_index=255'):
        check_label_range(labels, 2, ignore_index=255, name='labels')
    for dtype in (torch.float32, torch.bool, torch.complex64):
        with pytest.raises(
                TypeError, match=f'^target must be integers, got {dtype}'):
            check_label_range(labels.to(dtype), 3)


def test_value_checks_read_nothing_back_on_an_accelerator():
    """On a data-less 'meta' tensor any host read raises; the checks take
    the device-side path and return."""
    values = torch.empty(3, 4, device='meta')
    check_finite(values, 'logits')
    check_label_range(torch.empty(5, dtype=torch.long, device='meta'), 4)
    check_binary_targets(values, values)
