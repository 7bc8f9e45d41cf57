# As mmdet.visualization: drawing, off-screen, into RGB arrays.
from .figure import figure_to_rgb, new_figure
from .reliability_diagram import (draw_bin_counts, draw_reliability,
                                  plot_reliability_diagram)

__all__ = [
    'new_figure', 'figure_to_rgb', 'draw_reliability', 'draw_bin_counts',
    'plot_reliability_diagram'
]
