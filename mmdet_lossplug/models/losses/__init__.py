from .dr_loss import DRLoss, ranking_loss
from .poly_loss import (Poly1CrossEntropyLoss, Poly1StarFocalLoss,
                        PolyFocalLoss, PolyNCrossEntropyLoss,
                        sigmoid_focal_poly_loss, softmax_focal_poly_loss)

__all__ = [
    'DRLoss', 'ranking_loss', 'Poly1CrossEntropyLoss', 'PolyNCrossEntropyLoss',
    'PolyFocalLoss', 'Poly1StarFocalLoss', 'sigmoid_focal_poly_loss',
    'softmax_focal_poly_loss'
]
