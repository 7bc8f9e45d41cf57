import pytest
import torch

from mmdet_lossplug.input_checks import check_values


def test_check_values_raises_at_once_on_cpu():
    check_values(torch.tensor(True), 'never raised')
    with pytest.raises(ValueError, match='logits have NaN'):
        check_values(
            torch.isfinite(torch.tensor([1.0, float('nan')])).all(),
            'logits have NaN')


def test_check_values_compiles_without_graph_break():

    def double_finite(x):
        check_values(torch.isfinite(x).all(), 'x has NaN/Inf')
        return x * 2

    compiled = torch.compile(double_finite, fullgraph=True)
    assert torch.equal(compiled(torch.ones(3)), torch.full((3, ), 2.0))
    with pytest.raises(RuntimeError, match='x has NaN/Inf'):
        compiled(torch.tensor([1.0, float('inf')]))
