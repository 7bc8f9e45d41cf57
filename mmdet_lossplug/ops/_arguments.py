"""The DR expectation's argument checks, shared by the op's entry point and
the reference: on the host (shapes, dtypes, devices, temperatures: free)."""
import math
from typing import Optional

import torch
from torch import Tensor

LOGIT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
# The smallest temperature either implementation can take: the op scales
# scores by log2(e) / lam in float32 (the CUDA kernels' exp2), which must
# stay finite: with an infinite scale a score equal to its set's extreme
# gives 0 * inf = NaN from finite input.
MIN_LAMBDA_FLOAT32 = math.log2(math.e) / torch.finfo(torch.float32).max


def check_dr_arguments(logits: Tensor, labels: Tensor,
                       label_weights: Optional[Tensor], lam_pos: float,
                       lam_neg: float) -> None:
    """Host-side checks (no tensor values read): shapes ``(B, A, C)``,
    ``(B, A)``, ``(B, A)``, floating logits, integer labels, floating
    weights, one device, temperatures finite and
    ``>= MIN_LAMBDA_FLOAT32``."""
    for name, value in (('logits', logits), ('labels', labels),
                        ('label_weights', label_weights)):
        if not isinstance(value, Tensor) and not (name == 'label_weights'
                                                  and value is None):
            raise TypeError(
                f'{name} must be a Tensor, got {type(value).__name__}')
    if logits.dim() != 3:
        raise ValueError('logits must have shape (B, A, C), got '
                         f'{tuple(logits.shape)}')
    if logits.dtype not in LOGIT_DTYPES:
        raise TypeError('logits must be float32, float64, float16 or '
                        f'bfloat16, got {logits.dtype}')
    batch, anchors, _ = logits.shape
    if labels.is_floating_point() or labels.is_complex() \
            or labels.dtype == torch.bool:
        raise TypeError(f'labels must be integers, got {labels.dtype}')
    if tuple(labels.shape) != (batch, anchors):
        raise ValueError(f'labels must have shape {(batch, anchors)}, got '
                         f'{tuple(labels.shape)}')
    if label_weights is not None:
        if not label_weights.is_floating_point():
            raise TypeError('label_weights must be floating point, got '
                            f'{label_weights.dtype}')
        if tuple(label_weights.shape) != (batch, anchors):
            raise ValueError(f'label_weights must have shape '
                             f'{(batch, anchors)}, got '
                             f'{tuple(label_weights.shape)}')
    for name, value in (('labels', labels), ('label_weights', label_weights)):
        if value is not None and value.device != logits.device:
            raise ValueError(f'{name} must be on the device of logits '
                             f'({logits.device}), got {value.device}')
    for name, lam in (('lam_pos', lam_pos), ('lam_neg', lam_neg)):
        if not (math.isfinite(lam) and lam >= MIN_LAMBDA_FLOAT32):
            raise ValueError(f'{name} must be a finite number >= '
                             f'{MIN_LAMBDA_FLOAT32:.3g} (log2(e)/{name} a '
                             f'finite float32), got {lam}')
