from .adaptive_focal_loss import AdaptiveFocalLoss, focal_gamma_for_threshold
from .dr_loss import DRLoss, ranking_loss
from .poly_loss import (Poly1CrossEntropyLoss, Poly1StarFocalLoss,
                        PolyFocalLoss, PolyNCrossEntropyLoss,
                        sigmoid_focal_poly_loss, softmax_focal_poly_loss)

__all__ = [
    'AdaptiveFocalLoss', 'focal_gamma_for_threshold', 'DRLoss', 'ranking_loss',
    'Poly1CrossEntropyLoss', 'PolyNCrossEntropyLoss', 'PolyFocalLoss',
    'Poly1StarFocalLoss', 'sigmoid_focal_poly_loss', 'softmax_focal_poly_loss'
]
