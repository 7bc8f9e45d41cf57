"""LaECE and LRP as functions: a hand-worked case, a naive transcription
of the definition (explicit bin edges, per-bin means) on random
detections, bad input."""
import numpy as np
import pytest

from mmdet_lossplug.evaluation import laece, lrp


def test_by_hand():
    # Class 0 (2 objects): scores .9 / .5 / .2 with IoU .8 / 0 (FP) / .6.
    # Class 1 (1 object): .5 with IoU .5. Class 2: a detection, no object.
    # Class 3: 3 objects, no detection.
    conf = [0.9, 0.5, 0.2, 0.5, 0.7]
    labels = [0, 0, 0, 1, 2]
    ious = [0.8, 0.0, 0.6, 0.5, 0.0]
    num_gt = [2, 1, 0, 3]
    # Two bins: class 0 (|.6 - .7| + |.8 - .9|) / 3 = 1/15; class 1: 0.
    assert laece(conf, labels, ious, num_gt, n_bins=2) == pytest.approx(1 / 30)
    # One bin: class 0 |1.4 - 1.6| / 3; class 1: 0.
    assert laece(conf, labels, ious, num_gt, n_bins=1) == pytest.approx(1 / 30)
    # Four bins: class 0 {.2}: |.6 - .2|, {.5}: |0 - .5|, {.9}: |.8 - .9|,
    # (.4 + .5 + .1) / 3 = 1/3; class 1 {.5}: 0. Mean 1/6.
    assert laece(conf, labels, ious, num_gt, n_bins=4) == pytest.approx(1 / 6)
    errors = lrp(labels, np.array(ious) > 0, ious, num_gt, tau=0.5)
    # Class 0: (.6 / .5 + 1 + 0) / 3; class 1: (.5 / .5) / 1; class 3: 1.
    assert errors['lrp'] == pytest.approx((2.2 / 3 + 1 + 1) / 3)
    assert errors['lrp_loc'] == pytest.approx((0.3 + 0.5) / 2)
    assert errors['lrp_fp'] == pytest.approx((1 / 3 + 0) / 2)
    assert errors['lrp_fn'] == pytest.approx((0 + 0 + 1) / 3)


def _naive_laece(conf, labels, ious, num_gt, n_bins):
    edges = np.linspace(0, 1, n_bins + 1)
    per_class = []
    for k in range(len(num_gt)):
        mine = labels == k
        if num_gt[k] == 0 or not mine.any():
            continue
        total = 0.0
        for b in range(n_bins):
            lo = conf >= edges[b] if b == 0 else conf > edges[b]
            in_bin = mine & lo & (conf <= edges[b + 1])
            if in_bin.any():
                total += in_bin.sum() / mine.sum() * abs(ious[in_bin].mean() -
                                                         conf[in_bin].mean())
        per_class.append(total)
    return np.mean(per_class)


def test_equals_a_naive_transcription():
    rng = np.random.default_rng(0)
    n = 3000
    # Scores on a 0.01 grid, so many sit exactly on bin edges.
    conf = np.round(rng.uniform(0, 1, n), 2)
    labels = rng.integers(0, 6, n)
    hit = rng.uniform(0, 1, n) < conf
    ious = np.where(hit, rng.uniform(0.1, 1, n), 0.0)
    num_gt = np.array([50, 0, 80, 10, 1, 40])
    for n_bins in (10, 25):
        assert laece(conf, labels, ious, num_gt, n_bins) == pytest.approx(
            _naive_laece(conf, labels, ious, num_gt, n_bins), abs=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 1\]'):
        laece([0.5], [2], [0.5], [1, 1])
    with pytest.raises(ValueError, match='same size'):
        laece([0.5, 0.6], [0], [0.5], [1])
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        laece([1.5], [0], [0.5], [1])
    with pytest.raises(ValueError, match='n_bins'):
        laece([0.5], [0], [0.5], [1], n_bins=2.5)
    with pytest.raises(ValueError, match='tau'):
        lrp([0], [True], [0.5], [1], tau=1.0)
    with pytest.raises(ValueError, match='same size'):
        lrp([0, 0], [True], [0.5], [1], tau=0.5)
    # Nothing counted: NaN, not a crash.
    assert np.isnan(laece([0.5], [0], [0.0], [0]))
    assert np.isnan(lrp([0], [False], [0.0], [0], tau=0.5)['lrp'])
