"""Figures drawn off-screen into RGB arrays.

Matplotlib's Agg canvas renders a ``Figure`` without pyplot's global state
or a display; the RGB array is what mmengine's visualizer backends take
(``add_image``) and what ``mmcv.imwrite`` saves (as BGR).
"""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(width: float, height: float, dpi: int = 100) -> Figure:
    """A ``Figure`` of ``width`` x ``height`` inches on an Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """``fig`` laid out and drawn: ``(H, W, 3)`` uint8 RGB."""
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
