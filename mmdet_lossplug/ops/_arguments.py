"""The DR expectation's argument checks, shared by the op's entry point,
the reference and the fake kernels: on the host (shapes, dtypes, devices,
temperatures: free) in :func:`check_dr_arguments`, and the value checks
they run on the tensors.

The one door of ``ops/`` to the package's shared rules
(:mod:`mmdet_lossplug.input_checks`): the op's modules take every check
from here, so that the op's rules and messages are the losses'.
"""
import math
from typing import Optional

import torch
from torch import Tensor

from ..input_checks import (check_floating_point, check_integer_labels,
                            check_label_range, check_same_device,
                            check_scores_finite, check_tensor,
                            check_without_sync)

__all__ = [
    'LOGIT_DTYPES', 'MIN_LAMBDA_FLOAT32', 'check_dr_arguments',
    'check_devices', 'check_label_range', 'check_scores_finite',
    'check_without_sync'
]

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
    check_tensor(logits, 'logits')
    check_tensor(labels, 'labels')
    if label_weights is not None:
        check_tensor(label_weights, 'label_weights')
    if logits.dim() != 3:
        raise ValueError('logits must have shape (B, A, C), got '
                         f'{tuple(logits.shape)}')
    if logits.dtype not in LOGIT_DTYPES:
        raise TypeError('logits must be float32, float64, float16 or '
                        f'bfloat16, got {logits.dtype}')
    batch, anchors, _ = logits.shape
    check_integer_labels(labels, 'labels')
    if tuple(labels.shape) != (batch, anchors):
        raise ValueError(f'labels must have shape {(batch, anchors)}, got '
                         f'{tuple(labels.shape)}')
    if label_weights is not None:
        check_floating_point(label_weights, 'label_weights')
        if tuple(label_weights.shape) != (batch, anchors):
            raise ValueError(f'label_weights must have shape '
                             f'{(batch, anchors)}, got '
                             f'{tuple(label_weights.shape)}')
    check_devices(logits, labels=labels, label_weights=label_weights)
    for name, lam in (('lam_pos', lam_pos), ('lam_neg', lam_neg)):
        if not (math.isfinite(lam) and lam >= MIN_LAMBDA_FLOAT32):
            raise ValueError(f'{name} must be a finite number >= '
                             f'{MIN_LAMBDA_FLOAT32:.3g} (log2(e)/{name} a '
                             f'finite float32), got {lam}')


def check_devices(logits: Tensor, **others: Optional[Tensor]) -> None:
    """Every tensor of ``others`` (None: absent) on the device of
    ``logits``, as the op's kernels require (dr_expectation.cpp); its fake
    kernels check the same, so that a trace rejects what the op rejects."""
    for name, value in others.items():
        if value is not None:
            check_same_device(value, logits, name, 'logits')
