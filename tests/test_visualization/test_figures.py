"""figure_to_rgb renders a figure's pixels at its size and dpi; the
reliability bars stand at each bin's accuracy, their gap reaches its mean
confidence, on any axes."""
import numpy as np
import pytest

from mmdet_lossplug.evaluation import (plot_reliability_diagram,
                                       reliability_bins)
from mmdet_lossplug.visualization import (draw_bin_counts, draw_reliability,
                                          figure_to_rgb, new_figure)


def test_figure_to_rgb_is_the_figures_pixels():
    fig = new_figure(2, 1.5, dpi=50)
    ax = fig.subplots()
    ax.set_facecolor((1.0, 0.0, 0.0))
    image = figure_to_rgb(fig)
    assert image.shape == (75, 100, 3) and image.dtype == np.uint8
    # the axes' red fills the middle of the picture
    assert tuple(image[37, 50]) == (255, 0, 0)


def test_reliability_bars_stand_at_the_bins_accuracy():
    conf = np.array([0.05, 0.15, 0.62, 0.68, 0.95])
    hits = np.array([0, 0, 1, 0, 1])
    counts, mean_conf, accuracy = reliability_bins(conf, hits, 4)
    fig = new_figure(4, 4)
    top, bottom = fig.subplots(2, 1)
    draw_reliability(top, counts, mean_conf, accuracy, 0.1, 'precision',
                     'D-ECE')
    draw_bin_counts(bottom, counts)
    accuracy_bars, gap_bars = top.containers
    filled = np.flatnonzero(counts)
    assert [b.get_height()
            for b in accuracy_bars] == pytest.approx(accuracy[filled])
    # each gap starts at the accuracy and ends at the mean confidence
    for bar, k in zip(gap_bars, filled):
        assert bar.get_y() == pytest.approx(accuracy[k])
        assert bar.get_y() + bar.get_height() == pytest.approx(mean_conf[k])
    assert [b.get_height() for b in bottom.containers[0]] == list(counts)
    assert 'D-ECE 10.00%\nN = 5' in [t.get_text() for t in top.texts]
    assert top.get_ylabel() == 'precision'


def test_plot_reliability_diagram_is_an_rgb_image():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 200)
    image = plot_reliability_diagram(conf, rng.uniform(0, 1, 200) < conf)
    assert image.shape == (550, 450, 3) and image.dtype == np.uint8
    assert image.min() < 50 and image.max() == 255  # drawn on white
