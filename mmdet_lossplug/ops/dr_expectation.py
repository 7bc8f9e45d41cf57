"""``dr_expectation``: DR loss's per-image expectations ``(E-, E+)``, by the
compiled op (``torch.ops.mmdet_lossplug.dr_expectation``, see
:mod:`._registration`) or the pure-PyTorch reference.

A non-finite logit makes its image's ``E-`` and ``E+`` NaN (so the loss is
NaN and AMP's GradScaler skips the step); it raises at once only with
``MMDET_LOSSPLUG_EAGER_CHECKS=1``. Labels outside ``[0, C]`` and NaN
weights are errors: at once on the CPU (from the kernel); on CUDA through
:func:`~mmdet_lossplug.input_checks.check_without_sync`, at the next sync
(at once with ``MMDET_LOSSPLUG_EAGER_CHECKS=1``).
"""
import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..torch_features import HAS_LIBRARY_FAKE_KERNELS
from ._arguments import (check_dr_arguments, check_scores_finite,
                         check_without_sync)
from ._registration import EXT_IMPORT_ERROR, HAS_CUDA_KERNEL, HAS_EXT
from .reference import dr_expectation_reference

IMPLS = ('auto', 'op', 'reference')
# The op's status: counts of non-finite logits, bad labels and NaN weights,
# then a flag, 1 if labels and weights are valid (the extension's STATUS_*
# constants): asserting on the flag costs one launch, no eq or all.
_LABELS_AND_WEIGHTS_VALID = 3


def _check_impl_name(impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')


def check_impl(impl: str) -> str:
    """``impl`` of :func:`dr_expectation`, checked when a loss is built:
    one of :data:`IMPLS`, and ``op`` only where the extension is built."""
    _check_impl_name(impl)
    if impl == 'op' and not HAS_EXT:
        raise RuntimeError(
            'impl="op" but mmdet_lossplug was installed without its '
            f'compiled extension ({EXT_IMPORT_ERROR}); use '
            'impl="reference" or reinstall')
    return impl


def _op_supports(logits: Tensor) -> bool:
    return HAS_EXT and (logits.device.type == 'cpu' or
                        (logits.is_cuda and HAS_CUDA_KERNEL))


def _run_op(logits: Tensor, labels: Tensor, label_weights: Optional[Tensor],
            lam_pos: float, lam_neg: float) -> Tuple[Tensor, Tensor]:
    if label_weights is not None:
        label_weights = label_weights.to(torch.float32)
    e_neg, e_pos, _, status = torch.ops.mmdet_lossplug.dr_expectation(
        logits, labels.to(torch.int64), label_weights, float(lam_pos),
        float(lam_neg))
    if logits.device.type != 'cpu':  # the CPU kernel raised already
        check_without_sync(
            status[_LABELS_AND_WEIGHTS_VALID],
            f'dr_expectation: a label outside [0, {logits.size(-1)}] or a '
            'NaN label weight (the CPU op, or MMDET_LOSSPLUG_EAGER_CHECKS=1 '
            'and status, say which)')
    check_scores_finite(logits, 'logits')  # under eager checks only
    return e_neg, e_pos


if not HAS_LIBRARY_FAKE_KERNELS:
    # torch < 2.4: without a fake kernel Dynamo cannot trace the operator;
    # a compiled function breaks its graph here and runs the op eagerly.
    _run_op = torch._dynamo.disable(_run_op)

_warned_fallback = set()


def dr_expectation(logits: Tensor,
                   labels: Tensor,
                   label_weights: Optional[Tensor],
                   lam_pos: float,
                   lam_neg: float,
                   impl: str = 'auto') -> Tuple[Tensor, Tensor]:
    """``(E-, E+)`` per image, ``(B,)`` each, float32 (float64 for float64
    logits); see
    :func:`~mmdet_lossplug.ops.reference.dr_expectation_reference` for the
    definition and the arguments.

    Args:
        impl (str): ``auto``: the compiled op where it is built for the
            device of ``logits``, else the reference (one warning per device
            type); ``op``: the compiled op (an error where it is not built
            for that device); ``reference``: the pure-PyTorch one.
            Defaults to ``auto``.
    """
    _check_impl_name(impl)
    if impl == 'reference':
        return dr_expectation_reference(logits, labels, label_weights, lam_pos,
                                        lam_neg)
    check_dr_arguments(logits, labels, label_weights, lam_pos, lam_neg)
    if _op_supports(logits):
        return _run_op(logits, labels, label_weights, lam_pos, lam_neg)
    reason = EXT_IMPORT_ERROR or 'no CUDA kernel'
    if impl == 'op':
        raise RuntimeError('mmdet_lossplug\'s compiled op is not built for '
                           f'{logits.device.type} ({reason}); reinstall with '
                           "'pip install --no-build-isolation -e .' or use "
                           "impl='reference'")
    if logits.device.type not in _warned_fallback:
        _warned_fallback.add(logits.device.type)
        warnings.warn('mmdet_lossplug: compiled DR op not used for '
                      f'{logits.device.type} ({reason}); using the '
                      'pure-PyTorch reference (slower, more memory)')
    return dr_expectation_reference(logits, labels, label_weights, lam_pos,
                                    lam_neg)
