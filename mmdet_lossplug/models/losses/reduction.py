"""MMDetection's weighting and reduction for the losses of this package."""
from typing import Optional

from mmdet.models.losses.utils import weight_reduce_loss
from torch import Tensor

from ...input_checks import broadcast_weight


def reduce_loss(loss: Tensor, weight: Optional[Tensor], reduction: str,
                avg_factor: Optional[float]) -> Tensor:
    """``weight_reduce_loss`` with per-sample weights broadcast over an
    elementwise ``(N, C)`` loss; an empty batch is 0, not NaN (``mean`` of
    nothing), keeping the graph so backward still runs."""
    if loss.numel() == 0 and reduction != 'none':
        return loss.sum()
    return weight_reduce_loss(loss, broadcast_weight(weight, loss), reduction,
                              avg_factor)
