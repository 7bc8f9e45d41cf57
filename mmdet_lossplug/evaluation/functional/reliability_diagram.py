"""Reliability diagrams (Guo et al., ICML 2017, Fig. 1), drawn off-screen.

The figure is rendered by Matplotlib's Agg canvas into an RGB array, which
is what mmengine's visualizer backends take (``add_image``) and what
``mmcv.imwrite`` saves, so no pyplot state or display is involved.
"""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .calibration import ece, reliability_bins


def plot_reliability_diagram(confidences,
                             correct,
                             n_bins: int = 10,
                             title: str = '',
                             accuracy_label: str = 'accuracy',
                             error_name: str = 'ECE') -> np.ndarray:
    """Accuracy per equal-width confidence bin against the diagonal, the gap
    to it shaded, and the bin counts below.

    Args:
        confidences: ``(N,)`` values in ``[0, 1]``.
        correct: ``(N,)`` 0/1 outcomes (a detection's match for D-ECE).
        n_bins (int): Equal-width bins. Defaults to 10.
        title (str): Figure title.
        accuracy_label (str): What the y axis measures ("precision" for
            detections).
        error_name (str): The calibration error's name ("D-ECE").

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB image.
    """
    counts, mean_conf, accuracy = reliability_bins(confidences, correct,
                                                   n_bins)
    edges = np.linspace(0, 1, n_bins + 1)
    width, left = 1 / n_bins, edges[:-1]
    filled = counts > 0

    fig = Figure(figsize=(4.5, 5.5), dpi=100)
    canvas = FigureCanvasAgg(fig)
    top, bottom = fig.subplots(
        2, 1, sharex=True, gridspec_kw=dict(height_ratios=(3, 1)))
    top.bar(
        left[filled],
        accuracy[filled],
        width=width,
        align='edge',
        edgecolor='black',
        color='tab:blue',
        label=accuracy_label)
    # The gap between each bin's mean confidence and its accuracy.
    top.bar(
        left[filled], (mean_conf - accuracy)[filled],
        bottom=accuracy[filled],
        width=width,
        align='edge',
        color='tab:red',
        alpha=0.35,
        label='gap')
    top.plot([0, 1], [0, 1], 'k--', linewidth=1)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel(accuracy_label)
    top.legend(loc='upper left')
    top.text(
        0.97,
        0.05, f'{error_name} {100 * ece(confidences, correct, n_bins):.2f}%\n'
        f'N = {int(counts.sum())}',
        ha='right',
        va='bottom',
        transform=top.transAxes)
    if title:
        top.set_title(title)
    bottom.bar(
        left,
        counts,
        width=width,
        align='edge',
        edgecolor='black',
        color='grey')
    bottom.set_xlabel('confidence')
    bottom.set_ylabel('count')
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
