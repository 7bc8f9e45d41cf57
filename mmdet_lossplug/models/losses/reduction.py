"""MMDetection's weighting and reduction, for elementwise losses."""
from typing import Optional

from mmdet.models.losses.utils import weight_reduce_loss
from torch import Tensor


def broadcast_weight(weight: Optional[Tensor],
                     loss: Tensor) -> Optional[Tensor]:
    """Per-sample weights ``(N,)`` broadcast over the class axis of an
    elementwise ``(N, C)`` loss."""
    if weight is None:
        return None
    weight = weight.float()
    if loss.dim() == 2 and weight.dim() == 1:
        weight = weight[:, None]
    return weight


def weight_reduce_elementwise_loss(loss: Tensor, weight: Optional[Tensor],
                                   reduction: str,
                                   avg_factor: Optional[float]) -> Tensor:
    """MMDetection's ``weight_reduce_loss`` for an ``(N,)`` or ``(N, C)``
    loss whose weight may be per sample ``(N,)``; an empty batch is 0, not
    NaN (``mean`` of nothing), keeping the graph so backward still runs."""
    if loss.numel() == 0 and reduction != 'none':
        return loss.sum()
    return weight_reduce_loss(loss, broadcast_weight(weight, loss), reduction,
                              avg_factor)
