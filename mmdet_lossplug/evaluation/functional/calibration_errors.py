r"""Calibration errors of classifiers (Mukhoti et al., NeurIPS 2020, Eq. 1-3;
Guo et al., ICML 2017).

With predictions grouped into bins ``B_b`` by confidence,

.. math::

    \mathrm{ECE} = \sum_b \frac{|B_b|}{N} |\mathrm{acc}(B_b) -
    \mathrm{conf}(B_b)|, \qquad
    \mathrm{MCE} = \max_b |\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|;

ECE and MCE bin by equal width on ``[0, 1]`` (``(lo, hi]`` between the
edges ``linspace(0, 1, n_bins + 1)``, 0 in the first bin), AdaECE by
equal mass (sorted confidences split into ``n_bins`` runs whose sizes
differ by at most one). NumPy arrays or tensors in, a float out.
Confidences and probabilities must lie in ``[0, 1]``, ``hits`` (the 0/1
outcome of each prediction: a right class, or for a detection a true
positive) be 0/1 or bool and labels whole numbers; anything else is a
``ValueError`` naming the argument.
"""
from typing import List

import numpy as np
import torch


def to_numpy(values, dtype=np.float64, name: str = '') -> np.ndarray:
    """An array of ``dtype`` from a list, an array, a tensor of any device
    and float type (NumPy has no bfloat16, so floats go through float64) or
    mmdet's box type (its ``tensor``). With a ``name``, an empty one is a
    ``ValueError`` naming it: no calibration error is defined over
    nothing."""
    if hasattr(values, 'tensor'):  # mmdet's box types
        values = values.tensor
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        if values.is_floating_point():
            values = values.double()
        values = values.numpy()
    array = np.asarray(values, dtype=dtype)
    if name and array.size == 0:
        raise ValueError(f'{name} is empty: no calibration error is defined')
    return array


def check_probabilities(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` unchanged if every one is a number in ``[0, 1]``."""
    if not np.all((values >= 0) & (values <= 1)):  # False for NaN too
        bad = values[~((values >= 0) & (values <= 1))]
        raise ValueError(f'{name} must lie in [0, 1] (no NaN), got e.g. '
                         f'{bad.ravel()[0]}')
    return values


def check_n_bins(n_bins) -> int:
    """``n_bins`` as an int if it is a whole number >= 1."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)):
        raise ValueError(f'n_bins must be an int >= 1, got {n_bins!r}')
    if n_bins < 1:
        raise ValueError(f'n_bins must be >= 1, got {n_bins}')
    return int(n_bins)


def _confidences_and_hits(confidences, hits):
    conf = check_probabilities(
        to_numpy(confidences, name='confidences').ravel(), 'confidences')
    hits = to_numpy(hits, name='hits').ravel()
    if conf.shape != hits.shape:
        raise ValueError(f'confidences {conf.shape} and hits {hits.shape}'
                         ' must have the same size')
    if not np.all((hits == 0) | (hits == 1)):
        raise ValueError('hits must hold 0/1 (or bool) outcomes, got '
                         f'{np.unique(hits[(hits != 0) & (hits != 1)])[:5]}')
    return conf, hits


def equal_width_bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """The equal-width bin of each confidence: bin ``b`` holds
    ``(e_b, e_{b+1}]`` for the edges ``e = linspace(0, 1, n_bins + 1)``,
    and 0 joins bin 0 (the bins of fiveai/detection_calibration)."""
    edges = np.linspace(0, 1, check_n_bins(n_bins) + 1)
    return np.clip(np.searchsorted(edges, conf, side='left') - 1, 0, None)


def _equal_width_bins(conf: np.ndarray, n_bins: int) -> List[np.ndarray]:
    index = equal_width_bin_index(conf, n_bins)
    return [np.flatnonzero(index == b) for b in range(n_bins)]


def _equal_mass_bins(conf: np.ndarray, n_bins: int) -> List[np.ndarray]:
    return np.array_split(
        np.argsort(conf, kind='stable'), check_n_bins(n_bins))


def reliability_bins(confidences, hits, n_bins: int = 15):
    """The equal-width bins behind ECE and a reliability diagram.

    Returns:
        tuple[np.ndarray]: ``counts``, ``mean_confidence`` and ``accuracy``
        per bin, each ``(n_bins,)``; the last two are NaN in empty bins.
    """
    conf, hits = _confidences_and_hits(confidences, hits)
    bins = _equal_width_bins(conf, n_bins)
    counts = np.array([len(b) for b in bins])
    mean_conf = np.array([conf[b].mean() if len(b) else np.nan for b in bins])
    accuracy = np.array([hits[b].mean() if len(b) else np.nan for b in bins])
    return counts, mean_conf, accuracy


def _gaps(conf, hits, bins):
    """(weight |B|/N, |acc - conf|) of each non-empty bin."""
    return [(len(b) / len(conf), abs(hits[b].mean() - conf[b].mean()))
            for b in bins if len(b)]


def ece(confidences, hits, n_bins: int = 15) -> float:
    """Expected calibration error, equal-width bins."""
    conf, hits = _confidences_and_hits(confidences, hits)
    return float(
        sum(w * gap
            for w, gap in _gaps(conf, hits, _equal_width_bins(conf, n_bins))))


def adaptive_ece(confidences, hits, n_bins: int = 15) -> float:
    """AdaECE: expected calibration error over equal-mass bins."""
    conf, hits = _confidences_and_hits(confidences, hits)
    return float(
        sum(w * gap
            for w, gap in _gaps(conf, hits, _equal_mass_bins(conf, n_bins))))


def mce(confidences, hits, n_bins: int = 15) -> float:
    """Maximum calibration error over non-empty equal-width bins."""
    conf, hits = _confidences_and_hits(confidences, hits)
    return float(
        max(gap
            for _, gap in _gaps(conf, hits, _equal_width_bins(conf, n_bins))))


def _probs_and_labels(probs, labels):
    p = check_probabilities(to_numpy(probs, name='probs'), 'probs')
    y = to_numpy(labels, name='labels').ravel()
    if not np.all(y == np.round(y)):  # also catches NaN
        raise ValueError('labels must be whole class indices, got e.g. '
                         f'{y[y != np.round(y)][0]}')
    y = y.astype(np.int64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f'probs must be (N, K) for {y.shape[0]} labels, got '
                         f'{p.shape}')
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f'labels must lie in [0, {p.shape[1] - 1}]')
    return p, y


def classwise_ece(probs, labels, n_bins: int = 15) -> float:
    """Mean over classes ``k`` of the ECE of ``probs[:, k]`` as the
    confidence that the label is ``k``."""
    p, y = _probs_and_labels(probs, labels)
    return float(
        np.mean([ece(p[:, k], y == k, n_bins) for k in range(p.shape[1])]))


def nll(probs, labels, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the true class (>= 0)."""
    p, y = _probs_and_labels(probs, labels)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], eps, 1))))


def brier(probs, labels) -> float:
    """Multi-class Brier score ``mean_i sum_k (p_ik - y_ik)^2``, in
    ``[0, 2]``."""
    p, y = _probs_and_labels(probs, labels)
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - onehot)**2, axis=1)))
