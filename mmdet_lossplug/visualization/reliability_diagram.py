"""Reliability diagrams (Guo et al., ICML 2017, Fig. 1) drawn on Matplotlib
axes from binned statistics, so that any figure (one diagram, a panel per
model) draws them the same way.
"""
import numpy as np


def draw_reliability(ax,
                     counts: np.ndarray,
                     mean_confidence: np.ndarray,
                     accuracy: np.ndarray,
                     error: float,
                     accuracy_label: str = 'accuracy',
                     error_name: str = 'ECE') -> None:
    """On ``ax``: the accuracy of each equal-width confidence bin against
    the diagonal, the gap to each bin's mean confidence shaded, and the
    calibration error with the number of predictions in a corner.

    Args:
        ax (matplotlib.axes.Axes): Where to draw (any figure, pyplot's
            too).
        counts, mean_confidence, accuracy (np.ndarray): ``(n_bins,)`` per
            bin, as ``evaluation.functional.reliability_bins`` gives them
            (NaN in empty bins).
        error (float): The calibration error to print, in ``[0, 1]``.
        accuracy_label (str): What the y axis measures ("precision" for
            detections).
        error_name (str): The calibration error's name ("D-ECE").
    """
    n_bins = len(counts)
    width, left = 1 / n_bins, np.linspace(0, 1, n_bins + 1)[:-1]
    filled = counts > 0
    ax.bar(
        left[filled],
        accuracy[filled],
        width=width,
        align='edge',
        edgecolor='black',
        color='tab:blue',
        label=accuracy_label)
    # The gap between each bin's mean confidence and its accuracy.
    ax.bar(
        left[filled], (mean_confidence - accuracy)[filled],
        bottom=accuracy[filled],
        width=width,
        align='edge',
        color='tab:red',
        alpha=0.35,
        label='gap')
    ax.plot([0, 1], [0, 1], 'k--', linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel(accuracy_label)
    ax.legend(loc='upper left')
    ax.text(
        0.97,
        0.05,
        f'{error_name} {100 * error:.2f}%\nN = {int(counts.sum())}',
        ha='right',
        va='bottom',
        transform=ax.transAxes)


def draw_bin_counts(ax, counts: np.ndarray) -> None:
    """On ``ax``: how many predictions each equal-width bin holds."""
    n_bins = len(counts)
    ax.bar(
        np.linspace(0, 1, n_bins + 1)[:-1],
        counts,
        width=1 / n_bins,
        align='edge',
        edgecolor='black',
        color='grey')
    ax.set_xlabel('confidence')
    ax.set_ylabel('count')
