r"""Fitting a map of detection confidences, treated as binary predictions
(is the detection a true positive?) with logit ``z = log(s / (1 - s))``:
temperature scaling ``s_T = sigmoid(z / T)`` (Guo et al., ICML 2017; for
sigmoid heads exactly scaling the class logit) with ``T`` by grid search
on D-ECE (Mukhoti et al.'s grid, ``T`` in ``(0, 10]``, step 0.1) or by
binary NLL with L-BFGS over ``log T``; Platt scaling ``sigmoid(a z + b)``
(Platt, 1999) by the same L-BFGS. Confidences and targets must lie in
``[0, 1]`` (a ``ValueError`` otherwise: nothing is clamped silently).
"""
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..evaluation.functional import check_probabilities, ece, to_numpy
from ..input_checks import check_without_sync

# The search grid of Mukhoti et al. (Calibrating Deep Neural Networks using
# Focal Loss, NeurIPS 2020): T = 0.1, 0.2, ..., 10.
TEMPERATURE_GRID = np.round(np.arange(1, 101) * 0.1, 1)


def check_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f'temperature must be finite and > 0, got '
                         f'{temperature}')
    return temperature


def temper_scores(scores, temperature: float):
    """``sigmoid(logit(scores) / T)``; a tensor (same dtype and device) or
    an array in, the same out. Scores of exactly 0 and 1 stay put; a score
    outside ``[0, 1]`` (or NaN) has no logit and is an error (on an
    accelerator through a device-side assert, without a host sync)."""
    temperature = check_temperature(temperature)
    tensor = scores if isinstance(scores, torch.Tensor) else torch.as_tensor(
        to_numpy(scores))
    check_without_sync(((tensor >= 0) & (tensor <= 1)).all(),
                       'scores must lie in [0, 1] (no NaN) to be tempered')
    # float64 so that the logit of float32 scores near 1 stays finite.
    tempered = torch.sigmoid(torch.logit(tensor.double()) / temperature)
    if isinstance(scores, torch.Tensor):
        return tempered.to(scores.dtype)
    return tempered.numpy()


def checked_fit_data(confidences, targets) -> Tuple[np.ndarray, np.ndarray]:
    """Float64 ``(N,)`` confidences and targets (0/1 hits or IoUs),
    both in ``[0, 1]``, equally many and at least one; nothing clamped."""
    conf = check_probabilities(to_numpy(confidences).ravel(), 'confidences')
    target = check_probabilities(to_numpy(targets).ravel(), 'targets')
    if conf.size == 0 or conf.shape != target.shape:
        raise ValueError('need equally many confidences and targets, and '
                         f'at least one; got {conf.shape} and '
                         f'{target.shape}')
    return conf, target


def fit_temperature_grid(confidences,
                         hits,
                         n_bins: int = 10,
                         grid=TEMPERATURE_GRID) -> Tuple[float, float]:
    """The ``T`` of ``grid`` with the lowest ECE (D-ECE for detections).

    Returns:
        tuple[float, float]: ``T`` and its ECE. Ties go to the ``T`` closest
        to 1 (no scaling).
    """
    conf, hits = checked_fit_data(confidences, hits)
    errors = np.array(
        [ece(temper_scores(conf, t), hits, n_bins) for t in grid])
    best = np.flatnonzero(errors <= errors.min() + 1e-12)
    best = best[np.argmin(np.abs(np.asarray(grid)[best] - 1))]
    return float(grid[best]), float(errors[best])


def fit_logit_affine(confidences,
                     targets,
                     with_bias: bool,
                     max_iter: int = 100) -> Tuple[float, float, float]:
    """The ``a > 0`` (and ``b``) minimising the mean binary cross-entropy of
    ``sigmoid(a * logit(s) + b)`` against ``targets`` (0/1 or soft, e.g.
    IoUs), by L-BFGS over ``log a`` and ``b``: temperature scaling is
    ``a = 1 / T, b = 0``, Platt scaling both.

    Returns:
        tuple[float, float, float]: ``a``, ``b`` (0 without bias) and the
        loss there.
    """
    conf, target = checked_fit_data(confidences, targets)
    # Confidences of exactly 0 or 1 get a finite logit; only for the fit.
    logits = torch.logit(torch.from_numpy(conf), eps=1e-12)
    target = torch.from_numpy(target)
    log_a = torch.zeros((), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=with_bias)
    optimizer = torch.optim.LBFGS(
        [log_a, bias] if with_bias else [log_a],
        lr=0.5,
        max_iter=max_iter,
        line_search_fn='strong_wolfe')

    def loss():
        return F.binary_cross_entropy_with_logits(logits * log_a.exp() + bias,
                                                  target)

    def closure():
        optimizer.zero_grad()
        value = loss()
        value.backward()
        return value

    optimizer.step(closure)
    with torch.no_grad():
        return log_a.exp().item(), bias.item(), loss().item()


def fit_temperature_nll(confidences,
                        hits,
                        max_iter: int = 100) -> Tuple[float, float]:
    """The ``T`` minimising the mean binary cross-entropy of
    ``sigmoid(z / T)`` against ``hits``, by L-BFGS over ``log T``.

    Returns:
        tuple[float, float]: ``T`` and the NLL there.
    """
    scale, _, loss = fit_logit_affine(
        confidences, hits, with_bias=False, max_iter=max_iter)
    return 1 / scale, loss


# How a temperature is fitted, by the name tools/calibrate.py takes.
TEMPERATURE_OBJECTIVES = ('d-ece', 'nll')
