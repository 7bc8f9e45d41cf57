from .poly_loss import (Poly1CrossEntropyLoss, Poly1StarFocalLoss,
                        PolyFocalLoss, PolyNCrossEntropyLoss,
                        sigmoid_focal_poly_loss, softmax_focal_poly_loss)

__all__ = [
    'Poly1CrossEntropyLoss', 'PolyNCrossEntropyLoss', 'PolyFocalLoss',
    'Poly1StarFocalLoss', 'sigmoid_focal_poly_loss', 'softmax_focal_poly_loss'
]
