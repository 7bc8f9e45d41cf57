"""Calibration errors on hand-computed cases, a calibrated sample and
torchmetrics' calibration error."""
import math

import numpy as np
import pytest
import torch

from mmdet_lossplug.evaluation import (adaptive_ece, brier, classwise_ece, ece,
                                       mce, nll, reliability_bins)


def test_ece_and_mce_by_hand():
    conf = [0.1, 0.4, 0.45, 0.9, 0.95]
    hits = [0, 1, 0, 1, 1]
    # (0, .5]: conf 0.31667, acc 1/3, gap 1/60, weight 3/5;
    # (.5, 1]: conf 0.925, acc 1, gap 0.075, weight 2/5.
    assert ece(conf, hits, n_bins=2) == pytest.approx(0.04)
    assert mce(conf, hits, n_bins=2) == pytest.approx(0.075)


def test_adaptive_ece_uses_equal_mass_bins():
    conf, hits = [0.1, 0.2, 0.3, 0.9], [0, 0, 1, 1]
    # equal width: {.1,.2,.3} gap 2/15 w 3/4, {.9} gap .1 w 1/4
    assert ece(conf, hits, n_bins=2) == pytest.approx(0.125)
    # equal mass: {.1,.2} gap .15, {.3,.9} gap .4, each w 1/2
    assert adaptive_ece(conf, hits, n_bins=2) == pytest.approx(0.275)


def test_bin_edges_are_right_closed():
    # 0.5 belongs to (0, 0.5] and 0 to the first bin: one bin, acc 0.5.
    assert ece([0.0, 0.5], [1, 0], n_bins=2) == pytest.approx(0.25)
    assert ece([0.5, 0.5000001], [1, 0],
               n_bins=2) == pytest.approx(0.5 * 0.5 + 0.5 * 0.5000001)
    # The edges are linspace(0, 1, 26), as fiveai/detection_calibration's:
    # 0.28 lies in (0.24, 0.28] (edge 7 is 0.28 exactly) although ceil(0.28
    # * 25) = 8; alone there, gap 0.28, and 0.3 alone in (0.28, 0.32], gap
    # 0.7: ECE 0.49. In one bin they would give |0.5 - 0.29| = 0.21.
    assert ece([0.28, 0.3], [0, 1], n_bins=25) == pytest.approx(0.49)


def test_calibrated_sample_has_small_errors_and_torch_equals_numpy():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 200000)
    hits = rng.uniform(0, 1, conf.size) < conf
    assert ece(conf, hits) < 0.01 and adaptive_ece(conf, hits) < 0.01
    overconfident = np.clip(conf + 0.1, 0, 1)
    assert ece(overconfident, hits) > 0.08
    assert ece(torch.from_numpy(conf),
               torch.from_numpy(hits)) == ece(conf, hits)
    # NumPy has no bfloat16: such tensors are read through float64.
    half = torch.from_numpy(conf[:1000]).bfloat16()
    assert ece(half, hits[:1000]) == ece(half.double().numpy(), hits[:1000])


def test_classwise_nll_brier_by_hand():
    probs = np.array([[0.8, 0.2], [0.3, 0.7]])
    labels = np.array([0, 0])
    assert classwise_ece(probs, labels, n_bins=1) == pytest.approx(0.45)
    assert nll(probs,
               labels) == pytest.approx(-(math.log(0.8) + math.log(0.3)) / 2)
    assert brier(probs, labels) == pytest.approx(0.53)


def test_bad_input():
    with pytest.raises(ValueError, match='empty'):
        ece([], [])
    with pytest.raises(ValueError, match='same size'):
        ece([0.2, 0.3], [1])
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        ece([1.2], [1])
    with pytest.raises(ValueError, match='n_bins'):
        adaptive_ece([0.2], [1], n_bins=0)
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 1\]'):
        nll(np.array([[0.5, 0.5]]), np.array([2]))
    # Outcomes must be 0/1; probabilities in [0, 1], not NaN; labels whole.
    with pytest.raises(ValueError, match='hits must hold 0/1'):
        ece([0.2, 0.3], [1, 2])
    with pytest.raises(ValueError, match='hits must hold 0/1'):
        mce([0.2, 0.3], [0.5, 1])
    for bad in (1.5, -0.5, float('nan')):
        with pytest.raises(ValueError, match=r'confidences must lie in'):
            ece([0.2, bad], [1, 0])
        with pytest.raises(ValueError, match=r'probs must lie in'):
            brier(np.array([[0.5, bad]]), np.array([0]))
    with pytest.raises(ValueError, match='whole class indices'):
        nll(np.array([[0.5, 0.5], [0.2, 0.8]]), np.array([0.0, 1.5]))
    assert nll(np.array([[0.5, 0.5]]),
               np.array([1.0])) == nll(np.array([[0.5, 0.5]]), np.array([1]))
    for bad in (2.5, 0, -3, True, '10'):
        with pytest.raises(ValueError, match='n_bins'):
            ece([0.2], [1], n_bins=bad)
        with pytest.raises(ValueError, match='n_bins'):
            classwise_ece(np.array([[0.5, 0.5]]), np.array([1]), n_bins=bad)


def test_against_torchmetrics():
    classification = pytest.importorskip('torchmetrics.classification')
    rng = np.random.default_rng(1)
    conf = rng.uniform(0, 1, 5000)
    hits = rng.uniform(0, 1, conf.size) < conf**1.5
    for norm, ours in (('l1', ece), ('max', mce)):
        reference = classification.BinaryCalibrationError(
            n_bins=15, norm=norm)(torch.from_numpy(conf),
                                  torch.from_numpy(hits).long())
        assert ours(conf, hits) == pytest.approx(float(reference), 1e-6)
    # Multiclass: ECE of the top-class confidence against top-1 hits.
    logits = torch.from_numpy(rng.normal(0, 2, (3000, 5)))
    probs = logits.softmax(1)
    labels = torch.from_numpy(rng.integers(0, 5, 3000))
    reference = classification.MulticlassCalibrationError(
        num_classes=5, n_bins=15, norm='l1')(probs, labels)
    top, predicted = probs.max(1)
    assert ece(top,
               predicted == labels) == pytest.approx(float(reference), 1e-6)


def test_reliability_bins_by_hand():
    counts, mean_conf, accuracy = reliability_bins([0.1, 0.4, 0.45, 0.9, 0.95],
                                                   [0, 1, 0, 1, 1],
                                                   n_bins=4)
    assert counts.tolist() == [1, 2, 0, 2]
    np.testing.assert_allclose(mean_conf, [0.1, 0.425, np.nan, 0.925])
    np.testing.assert_allclose(accuracy, [0.0, 0.5, np.nan, 1.0])
