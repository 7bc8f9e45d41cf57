"""Checks at the loss and op boundary, with messages that name the bad
argument and the rule it breaks.

A wrong shape or an out-of-range label otherwise surfaces as an index error
deep inside ``gather``/``one_hot`` (or a device-side assert on CUDA). What
is an error follows PyTorch's own losses: an *index* out of range (a label)
and a NaN *weight* are errors; a NaN or infinite *score* is not: it gives a
non-finite loss, which AMP's ``GradScaler`` skips (lowering its scale) and
MMDetection's invalid-loss check reports, so no check here raises on it
unless eager checks are on.

Shape, dtype, device and argument checks are free and raise at once.
Checks of tensor *values* go through :func:`check_without_sync`, which
never waits for an accelerator: on the CPU (where reading a value costs no
sync) it raises at once; on CUDA, and whenever ``torch.compile`` traces the
loss, it queues a device-side assert that fails the next synchronising call
(e.g. the logger's ``loss.item()``). Their messages therefore name the
argument and the rule, not the offending value.
``MMDET_LOSSPLUG_EAGER_CHECKS=1`` (or :func:`set_eager_checks`) makes CUDA
checks raise at once, with a host sync per check, and makes non-finite
scores an error with their count: for debugging where a NaN came from.
"""
import math
import os
from typing import Optional

import torch
from torch import Tensor

from .torch_features import HAS_COMPILED_ASSERTS, is_compiling

_eager_checks = os.getenv('MMDET_LOSSPLUG_EAGER_CHECKS', '0') == '1'


def set_eager_checks(enabled: bool) -> None:
    """Raise value errors on accelerators at once (a host sync per check)
    instead of through a device-side assert at the next sync."""
    global _eager_checks
    _eager_checks = bool(enabled)


def check_without_sync(ok: Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` unless the boolean scalar ``ok`` holds,
    without a host sync on an accelerator (see the module docstring).

    Under ``torch.compile`` and on an accelerator (eager checks off) the
    check is ``torch._assert_async``: a ``RuntimeError`` carrying
    ``message`` on the CPU, a device-side assert on CUDA. Before torch 2.9
    compiled code runs the check eagerly, a graph break
    (:mod:`mmdet_lossplug.torch_features`).
    """
    if is_compiling() or (ok.device.type != 'cpu' and not _eager_checks):
        torch._assert_async(ok, message)
    elif not bool(ok):
        raise ValueError(message)


if not HAS_COMPILED_ASSERTS:
    # torch < 2.9: Inductor compiles _assert_async to nothing, so a check
    # traced into a graph would silently pass; it breaks the graph instead
    # and runs eagerly.
    check_without_sync = torch._dynamo.disable(check_without_sync)


def check_number(value: float,
                 name: str,
                 low: float = -math.inf,
                 high: float = math.inf,
                 low_open: bool = False) -> float:
    """A finite ``value`` in ``[low, high]`` (``(low, high]`` with
    ``low_open``), as a float; NaN and +-inf are rejected."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f'{name} must be a number, got {value!r}') from None
    inside = (value > low if low_open else value >= low) and value <= high
    if not (math.isfinite(value) and inside):
        bounds = ('(' if low_open else '[') + f'{low:g}, {high:g}' + (
            ')' if math.isinf(high) else ']')
        raise ValueError(
            f'{name} must be a finite number in {bounds}, got {value}')
    return value


def check_logits(pred: Tensor, name: str = 'pred') -> None:
    """``pred`` must be a floating ``(N, C)`` tensor; see
    :func:`check_scores_finite` for its values."""
    check_tensor(pred, name)
    if pred.dim() != 2:
        raise ValueError(
            f'{name} must have shape (N, C), got {tuple(pred.shape)}')
    check_floating_point(pred, name)
    check_scores_finite(pred, name)


def check_tensor(value, name: str) -> None:
    """``value`` is a Tensor."""
    if not isinstance(value, Tensor):
        raise TypeError(f'{name} must be a Tensor, got {type(value).__name__}')


def check_floating_point(values: Tensor, name: str) -> None:
    """``values`` of a floating dtype."""
    if not values.is_floating_point():
        raise TypeError(f'{name} must be floating point, got {values.dtype}')


def check_scores_finite(scores: Tensor, name: str) -> None:
    """Under eager checks only, raise on NaN/Inf scores with their count
    (one host sync). Otherwise they pass: the loss comes out non-finite,
    as PyTorch's own losses do (see the module docstring)."""
    if not _eager_checks or is_compiling():
        return
    bad = int((~torch.isfinite(scores)).sum())
    if bad:
        raise ValueError(f'{name} has {bad} NaN/Inf values of '
                         f'{scores.numel()}; the loss would be non-finite')


def check_finite(values: Tensor, name: str) -> None:
    """A floating tensor without NaN or Inf."""
    check_floating_point(values, name)
    check_without_sync(
        torch.isfinite(values).all(),
        f'{name} has NaN/Inf values; the loss would be NaN')


def check_same_device(values: Tensor, reference: Tensor, name: str,
                      reference_name: str) -> None:
    """``values`` on the device of ``reference``; otherwise the first op
    mixing them fails with a message naming neither."""
    if values.device != reference.device:
        raise ValueError(f'{name} is on {values.device} but {reference_name} '
                         f'on {reference.device}; put them on one device')


def check_labels(labels: Tensor,
                 pred: Tensor,
                 max_label: int,
                 ignore_index: Optional[int] = None,
                 name: str = 'target',
                 pred_name: str = 'pred') -> Tensor:
    """Integer labels of shape ``(N,)`` for the ``(N, C)`` scores ``pred``,
    on its device, in ``[0, max_label]`` except entries equal to
    ``ignore_index``. Returns them as int64 (the index type of ``gather``),
    so int32/uint8 labels work."""
    if labels.dim() != 1 or labels.size(0) != pred.size(0):
        raise ValueError(f'{name} must have shape ({pred.size(0)},) to match '
                         f'the scores, got {tuple(labels.shape)}')
    check_same_device(labels, pred, name, pred_name)
    check_label_range(labels, max_label, ignore_index, name)
    return labels.long()


def check_integer_labels(labels: Tensor, name: str = 'target') -> None:
    """Labels of any integer dtype (callers convert them to int64, the
    index type of ``gather``); floating, complex or boolean labels would be
    truncated or misread, so they are an error."""
    if labels.is_floating_point() or labels.is_complex() \
            or labels.dtype == torch.bool:
        raise TypeError(f'{name} must be integers, got {labels.dtype}')


def check_label_range(labels: Tensor,
                      max_label: int,
                      ignore_index: Optional[int] = None,
                      name: str = 'target') -> None:
    """Integer labels in ``[0, max_label]`` (any shape), except entries
    equal to ``ignore_index``."""
    check_integer_labels(labels, name)
    ok = (labels >= 0) & (labels <= max_label)
    if ignore_index is not None:
        ok = ok | (labels == ignore_index)
    check_without_sync(
        ok.all(), f'{name} has values outside [0, {max_label}]' +
        ('' if ignore_index is None else
         f' other than ignore_index={ignore_index}'))


def check_binary_targets(target: Tensor,
                         pred: Tensor,
                         name: str = 'target') -> None:
    """One-hot or soft targets: the shape of ``pred``, its device, values in
    ``[0, 1]`` (a 2 or -1 would silently give a negative loss)."""
    if target.shape != pred.shape:
        raise ValueError(f'{name} must be labels ({pred.size(0)},) or one-hot '
                         f'{tuple(pred.shape)}, got {tuple(target.shape)}')
    check_same_device(target, pred, name, 'pred')
    check_without_sync(((target >= 0) & (target <= 1)).all(),
                       f'{name} (one-hot or soft) has values outside [0, 1]')


def check_reduction(reduction: Optional[str], allow_none: bool) -> None:
    """``none``, ``mean`` or ``sum`` (or None for ``reduction_override``)."""
    allowed = ('none', 'mean', 'sum') + ((None, ) if allow_none else ())
    if reduction not in allowed:
        raise ValueError(f'reduction must be one of {allowed}, '
                         f'got {reduction!r}')


def check_weight(weight: Optional[Tensor],
                 pred: Tensor,
                 name: str = 'weight') -> None:
    """``weight`` is per sample ``(N,)`` or per element ``(N, C)``, on the
    device of ``pred``, and finite (a NaN weight would make the loss NaN)."""
    if weight is None:
        return
    if tuple(weight.shape) not in ((pred.size(0), ), tuple(pred.shape)):
        raise ValueError(f'{name} must have shape ({pred.size(0)},) or '
                         f'{tuple(pred.shape)}, got {tuple(weight.shape)}')
    check_same_device(weight, pred, name, 'pred')
    if weight.is_floating_point():
        check_finite(weight, name)
