"""Post-hoc calibrators: each recovers a planted miscalibration, isotonic
regression by hand, order kept (temperature, Platt) or only not reversed
(isotonic), a config round trip, bad input."""
import numpy as np
import pytest
import torch

from mmdet_lossplug.calibration import (IsotonicCalibrator, PlattCalibrator,
                                        TemperatureCalibrator,
                                        build_calibrator)
from mmdet_lossplug.evaluation import ece


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _planted(slope, intercept, n=100000, seed=0):
    """Outcomes drawn with probability sigmoid(z); the "detector" reports
    sigmoid(slope * z + intercept), so sigmoid((logit(s) - intercept) /
    slope) is calibrated: Platt should find 1 / slope and -intercept /
    slope."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, n)
    hits = (rng.uniform(0, 1, n) < _sigmoid(z)).astype(float)
    return _sigmoid(slope * z + intercept), hits


def test_platt_recovers_a_planted_slope_and_intercept():
    scores, hits = _planted(2.0, -1.0)
    assert ece(scores, hits, 10) > 0.05
    platt = PlattCalibrator.fit(
        scores, np.zeros(len(scores), int), hits, 1, classwise=False)
    assert platt.params[0]['slope'] == pytest.approx(0.5, rel=0.03)
    assert platt.params[0]['intercept'] == pytest.approx(0.5, abs=0.03)
    assert ece(platt.apply(scores), hits, 10) < 0.01


def test_classwise_platt_and_temperature_fit_each_class():
    over, correct_over = _planted(2.0, 0.0, seed=1)
    under, correct_under = _planted(0.5, 0.0, seed=2)
    scores = np.concatenate([over, under])
    hits = np.concatenate([correct_over, correct_under])
    labels = np.repeat([0, 2], len(over))  # class 1 has no detections
    platt = PlattCalibrator.fit(scores, labels, hits, 3)
    assert platt.params[0]['slope'] == pytest.approx(0.5, rel=0.03)
    assert platt.params[2]['slope'] == pytest.approx(2.0, rel=0.03)
    assert platt.params[1] is None
    temperature = TemperatureCalibrator.fit(scores, labels, hits, 3)
    assert temperature.params[0]['temperature'] == pytest.approx(2, rel=0.03)
    assert temperature.params[2]['temperature'] == pytest.approx(0.5, rel=0.03)
    # A class without validation detections keeps its scores.
    np.testing.assert_array_equal(
        platt.apply(np.array([0.3, 0.7]), np.array([1, 1])), [0.3, 0.7])
    # Both are strictly increasing per class: the ranking (and AP) stays.
    grid = np.linspace(0.001, 0.999, 999)
    for calibrator in (platt, temperature):
        for label in (0, 2):
            out = calibrator.apply(grid, np.full(grid.shape, label))
            assert np.all(np.diff(out) > 0)


def test_isotonic_by_hand():
    # Pool adjacent violators on targets 0, 1, 0, 1 at scores .1 .. .4:
    # (1, 0) pool to 0.5, giving knots 0, .5, .5, 1; linear between
    # knots, constant beyond them.
    isotonic = IsotonicCalibrator.fit([0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0],
                                      [0, 1, 0, 1],
                                      1,
                                      classwise=False)
    out = isotonic.apply(np.array([0.05, 0.1, 0.25, 0.35, 0.9]))
    np.testing.assert_allclose(out, [0, 0, 0.5, 0.75, 1])


def test_isotonic_recovers_a_planted_miscalibration_and_ties_scores():
    scores, hits = _planted(2.0, -1.0)
    half = len(scores) // 2
    isotonic = IsotonicCalibrator.fit(scores[:half], np.zeros(half, int),
                                      hits[:half], 1)
    held_out = isotonic.apply(scores[half:], np.zeros(half, int))
    assert ece(scores[half:], hits[half:], 10) > 0.05
    assert ece(held_out, hits[half:], 10) < 0.01
    order = np.argsort(scores[half:])
    assert np.all(np.diff(held_out[order]) >= 0)  # never reversed ...
    assert len(np.unique(held_out)) < len(held_out) // 10  # ... but tied
    assert held_out.min() >= 0 and held_out.max() <= 1


def test_config_round_trip_and_tensors():
    scores, hits = _planted(2.0, -1.0, n=2000)
    labels = np.arange(len(scores)) % 2
    probe = torch.tensor([0.0, 0.2, 0.6, 1.0], dtype=torch.float16)
    probe_labels = torch.tensor([0, 1, 0, 1])
    for kind in (TemperatureCalibrator, PlattCalibrator, IsotonicCalibrator):
        fitted = kind.fit(scores, labels, hits, 2)
        rebuilt = build_calibrator(fitted.to_dict())
        np.testing.assert_array_equal(
            rebuilt.apply(scores, labels), fitted.apply(scores, labels))
        out = rebuilt.apply(probe, probe_labels)
        assert out.dtype == torch.float16 and out.shape == probe.shape


def test_bad_input():
    with pytest.raises(ValueError, match='calibrator type'):
        build_calibrator(dict(type='histogram'))
    with pytest.raises(ValueError, match='slope > 0'):
        build_calibrator(
            dict(
                type='platt',
                classwise=False,
                params=[dict(slope=-1.0, intercept=0.0)]))
    with pytest.raises(ValueError, match='non-decreasing'):
        build_calibrator(
            dict(
                type='isotonic',
                classwise=False,
                params=[dict(x=[0.1, 0.2], y=[0.9, 0.1])]))
    with pytest.raises(ValueError, match='temperature'):
        build_calibrator(
            dict(
                type='temperature',
                classwise=False,
                params=[dict(temperature=0.0)]))
    platt = PlattCalibrator([dict(slope=1.0, intercept=0.0)], classwise=True)
    with pytest.raises(ValueError, match='needs the labels'):
        platt.apply(np.array([0.5]))
    with pytest.raises(ValueError, match='label 3 has no calibrator'):
        platt.apply(np.array([0.5]), np.array([3]))
    for scores, targets, name in (([1.2], [1], 'confidences'),
                                  ([float('nan')], [1],
                                   'confidences'), ([0.5], [2], 'targets')):
        with pytest.raises(ValueError, match=name):
            PlattCalibrator.fit(scores, [0], targets, 1)
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 0\]'):
        IsotonicCalibrator.fit([0.5], [1], [1], 1)
