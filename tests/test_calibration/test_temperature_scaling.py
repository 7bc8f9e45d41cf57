"""Temperature scaling: the transform's closed form and order, and both
fits, alone and through TemperatureCalibrator, recovering a planted
temperature."""
import numpy as np
import pytest
import torch

from mmdet_lossplug.calibration import (TemperatureCalibrator,
                                        fit_temperature_grid,
                                        fit_temperature_nll, temper_scores)
from mmdet_lossplug.evaluation import ece


def test_temper_scores_closed_form_and_types():
    scores = np.array([0.0, 0.1, 0.5, 0.8, 1.0])
    z = np.log(scores[1:4] / (1 - scores[1:4]))
    out = temper_scores(scores, 2.0)
    np.testing.assert_allclose(out[1:4], 1 / (1 + np.exp(-z / 2)))
    assert out[0] == 0 and out[-1] == 1 and out[2] == 0.5
    np.testing.assert_allclose(temper_scores(scores, 1.0), scores, rtol=1e-15)
    half = torch.tensor([0.2, 0.9], dtype=torch.float16)
    assert temper_scores(half, 3.0).dtype == torch.float16
    # Strictly increasing: the order of detections (and AP) is kept.
    dense = np.sort(np.random.default_rng(0).uniform(0, 1, 1000))
    assert np.all(np.diff(temper_scores(dense.astype(np.float32), 0.3)) >= 0)
    for bad in (0.0, -1.0, float('inf'), float('nan')):
        with pytest.raises(ValueError, match='temperature'):
            temper_scores(scores, bad)
    for bad in (1.5, -0.1, float('nan')):
        for kind in (np.array, torch.tensor):
            with pytest.raises(
                    ValueError, match=r'scores must lie in \[0, 1\]'):
                temper_scores(kind([0.2, bad]), 2.0)


@pytest.mark.parametrize('planted', [0.5, 2.0])
def test_fits_recover_a_planted_temperature(planted):
    # True probabilities sigmoid(z); the "detector" reports sigmoid(z *
    # planted), so dividing its logits by T = planted calibrates it.
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, 200000)
    hits = rng.uniform(0, 1, z.size) < 1 / (1 + np.exp(-z))
    reported = 1 / (1 + np.exp(-z * planted))
    assert ece(reported, hits, 10) > 0.04
    t_nll, nll = fit_temperature_nll(reported, hits)
    assert t_nll == pytest.approx(planted, rel=0.03)
    t_grid, d_ece = fit_temperature_grid(reported, hits, n_bins=10)
    assert t_grid == pytest.approx(planted, abs=0.1 + 1e-9)
    assert d_ece < 0.01
    # The calibrator fits by either objective, one T for all classes.
    labels = np.zeros(z.size, dtype=np.int64)
    for objective, tolerance in (('nll', dict(rel=0.03)),
                                 ('d-ece', dict(abs=0.1 + 1e-9))):
        calibrator = TemperatureCalibrator.fit(
            reported,
            labels,
            hits,
            1,
            classwise=False,
            objective=objective,
            n_bins=10)
        assert calibrator.params[0]['temperature'] == pytest.approx(
            planted, **tolerance)
        assert ece(calibrator.apply(reported), hits, 10) < 0.01


def test_fit_bad_input():
    with pytest.raises(ValueError, match='at least one'):
        fit_temperature_nll([], [])
    with pytest.raises(ValueError, match='objective'):
        TemperatureCalibrator.fit([0.5], [0], [1], 1, objective='brier')
    # Confidences outside [0, 1] or NaN are an error, not clamped.
    for fit in (fit_temperature_nll, fit_temperature_grid):
        for bad in (1.2, -0.1, float('nan')):
            with pytest.raises(ValueError, match=r'confidences .*\[0, 1\]'):
                fit([0.5, bad], [1, 0])
        with pytest.raises(ValueError, match='targets'):
            fit([0.5, 0.6], [1, 2])
