"""Reliability diagrams (Guo et al., ICML 2017, Fig. 1) of predictions,
drawn off-screen into an RGB array (:mod:`mmdet_lossplug.visualization`:
no pyplot state or display).
"""
import numpy as np

from ..visualization import (draw_bin_counts, draw_reliability, figure_to_rgb,
                             new_figure)
from .functional import ece, reliability_bins


def plot_reliability_diagram(confidences,
                             hits,
                             n_bins: int = 10,
                             title: str = '',
                             accuracy_label: str = 'accuracy',
                             error_name: str = 'ECE') -> np.ndarray:
    """A reliability diagram (:func:`draw_reliability`) above the bin
    counts (:func:`draw_bin_counts`), as an image.

    Args:
        confidences: ``(N,)`` values in ``[0, 1]``.
        hits: ``(N,)`` 0/1 outcomes (a detection's match for D-ECE).
        n_bins (int): Equal-width bins. Defaults to 10.
        title (str): Figure title.
        accuracy_label (str): What the y axis measures ("precision" for
            detections).
        error_name (str): The calibration error's name ("D-ECE").

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB image.
    """
    fig = new_figure(4.5, 5.5)
    top, bottom = fig.subplots(
        2, 1, sharex=True, gridspec_kw=dict(height_ratios=(3, 1)))
    counts, mean_conf, accuracy = reliability_bins(confidences, hits, n_bins)
    draw_reliability(top, counts, mean_conf, accuracy,
                     ece(confidences, hits, n_bins), accuracy_label,
                     error_name)
    if title:
        top.set_title(title)
    draw_bin_counts(bottom, counts)
    return figure_to_rgb(fig)
