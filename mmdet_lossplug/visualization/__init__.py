# As mmdet.visualization: drawing, off-screen, into RGB arrays. It depends on
# nothing else of the package, so the metrics, the hooks and the comparison's
# plots all draw with it.
from .figure import figure_to_rgb, new_figure
from .reliability_diagram import draw_bin_counts, draw_reliability

__all__ = [
    'new_figure', 'figure_to_rgb', 'draw_reliability', 'draw_bin_counts'
]
