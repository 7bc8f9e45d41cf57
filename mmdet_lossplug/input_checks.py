"""Checks at the loss and op boundary, with messages that name the bad
value.

A wrong shape or an out-of-range label otherwise surfaces as an index error
deep inside ``gather``/``one_hot`` (or a device-side assert on CUDA), and a
NaN logit as a NaN loss many iterations later.

Shape, dtype and argument checks are free and raise at once. Checks of
tensor *values* go through :func:`check_values`, which never waits for an
accelerator: on the CPU (where reading a value costs no sync) it raises at
once; on CUDA, and whenever ``torch.compile`` traces the loss, it queues a
device-side assert that fails the next synchronising call (e.g. the
logger's ``loss.item()``). ``MMDET_LOSSPLUG_EAGER_CHECKS=1`` (or
:func:`set_eager_checks`) makes CUDA checks raise at once, with a host sync
per check, for debugging.
"""
import os
from typing import Optional

import torch
from torch import Tensor


_eager_checks = os.getenv('MMDET_LOSSPLUG_EAGER_CHECKS', '0') == '1'


def set_eager_checks(enabled: bool) -> None:
    """Raise value errors on accelerators at once (a host sync per check)
    instead of through a device-side assert at the next sync."""
    global _eager_checks
    _eager_checks = bool(enabled)


def check_values(ok: Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` unless the boolean scalar ``ok`` holds,
    without a host sync on an accelerator (see the module docstring).

    Under ``torch.compile`` and on an accelerator (eager checks off) the
    check is ``torch._assert_async``: a ``RuntimeError`` carrying
    ``message`` on the CPU, a device-side assert on CUDA.
    """
    if torch.compiler.is_compiling() or (ok.device.type != 'cpu'
                                         and not _eager_checks):
        torch._assert_async(ok, message)
    elif not bool(ok):
        raise ValueError(message)


def check_epsilon(epsilon: float, name: str = 'epsilon') -> float:
    """Poly-1 needs ``epsilon >= -1``: below it the loss is not monotone in
    pt and training diverges (PolyLoss paper, Sec. 4)."""
    epsilon = float(epsilon)
    if not epsilon >= -1.0:  # also catches NaN
        raise ValueError(f'{name} must be >= -1, got {epsilon}')
    return epsilon


def check_logits(pred: Tensor, name: str = 'pred') -> None:
    """``pred`` must be a floating ``(N, C)`` tensor of finite values."""
    if not isinstance(pred, Tensor):
        raise TypeError(f'{name} must be a Tensor, got {type(pred).__name__}')
    if pred.dim() != 2:
        raise ValueError(
            f'{name} must have shape (N, C), got {tuple(pred.shape)}')
    check_finite(pred, name)


def check_finite(values: Tensor, name: str) -> None:
    """A floating tensor without NaN or Inf."""
    if not values.is_floating_point():
        raise TypeError(f'{name} must be floating point, got {values.dtype}')
    # One fast reduction first; the exact count only when its sum is not
    # finite (a NaN/Inf, or finite values whose sum overflows).
    if values.numel() == 0 or bool(torch.isfinite(values.sum())):
        return
    bad = int((~torch.isfinite(values)).sum())
    if bad:
        raise ValueError(f'{name} has {bad} NaN/Inf value(s) among '
                         f'{values.numel()}; the loss would be NaN')


def check_labels(labels: Tensor,
                 num_samples: int,
                 max_label: int,
                 ignore_index: Optional[int] = None,
                 name: str = 'target') -> None:
    """Integer labels of shape ``(num_samples,)`` in ``[0, max_label]``,
    except entries equal to ``ignore_index``."""
    if labels.dim() != 1 or labels.size(0) != num_samples:
        raise ValueError(f'{name} must have shape ({num_samples},) to match '
                         f'the scores, got {tuple(labels.shape)}')
    check_label_range(labels, max_label, ignore_index, name)


def check_label_range(labels: Tensor,
                      max_label: int,
                      ignore_index: Optional[int] = None,
                      name: str = 'target') -> None:
    """Integer labels in ``[0, max_label]`` (any shape), except entries
    equal to ``ignore_index``."""
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f'{name} labels must be integers, got {labels.dtype}')
    valid = labels if ignore_index is None else labels[labels != ignore_index]
    if valid.numel() == 0:
        return
    low, high = int(valid.min()), int(valid.max())
    if low < 0 or high > max_label:
        bad = low if low < 0 else high
        raise ValueError(f'{name} has label {bad} outside [0, {max_label}]' + (
            '' if ignore_index is None else f' (ignore_index={ignore_index})'))


def check_reduction(reduction: Optional[str], allow_none: bool) -> None:
    """``none``, ``mean`` or ``sum`` (or None for ``reduction_override``)."""
    allowed = ('none', 'mean', 'sum') + ((None, ) if allow_none else ())
    if reduction not in allowed:
        raise ValueError(f'reduction must be one of {allowed}, '
                         f'got {reduction!r}')


def check_weight(weight: Optional[Tensor],
                 pred: Tensor,
                 name: str = 'weight') -> None:
    """``weight`` is per sample ``(N,)`` or per element ``(N, C)``."""
    if weight is None:
        return
    if tuple(weight.shape) not in ((pred.size(0), ), tuple(pred.shape)):
        raise ValueError(f'{name} must have shape ({pred.size(0)},) or '
                         f'{tuple(pred.shape)}, got {tuple(weight.shape)}')


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


def upcast_low_precision(values: Tensor) -> Tensor:
    """fp16/bf16 to fp32, so that losses are computed and accumulated in
    fp32 (exp(p / lam) reaches e^12.5 for DR loss); fp32/fp64 unchanged."""
    if values.dtype in (torch.float16, torch.bfloat16):
        return values.float()
    return values
