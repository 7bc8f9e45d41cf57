r"""Post-hoc calibrators of detection scores: temperature scaling (Guo et
al., ICML 2017; for detection, Kueppers et al., CVPR-W 2020), Platt scaling
(Platt, 1999) and isotonic regression (Zadrozny and Elkan, KDD 2002), as
fiveai/detection_calibration (Kuzucu, Oksuz et al., ECCV 2024) fits them to
detectors.

A detection's confidence ``s`` is treated as a binary prediction (is it a
true positive?); how each map is fitted: :mod:`.fitting`.

Each calibrator maps a detection's ``(score, label)`` to a new score
(``fit`` / ``apply``). They are fitted on judged validation detections
(ignored ones left out) against a target: 1 for a true positive and 0 for
a false positive (what D-ECE asks), or the IoU of a true positive (what
LaECE asks). As in the toolkit, Platt and isotonic are fitted per class by
default (a class without validation detections keeps its scores);
temperature scaling is usually one ``T`` for all.

What they do to AP: temperature and Platt (slope ``a > 0``) are strictly
increasing, per class, so each class's ranking, and COCO AP (computed per
class), does not move. Isotonic regression is a non-decreasing step
function: it ties scores that were ordered, and the order COCO gives tied
detections is their input order, so AP can move either way.

A calibrator is stored as a plain dict (``to_dict`` / ``build_calibrator``)
so that ``tools/calibrate.py`` can write it into a config for
``DetectionScoreCalibrationHook``.
"""
from typing import Optional, Sequence

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression

from ..evaluation.functional import to_numpy
from .fitting import (TEMPERATURE_OBJECTIVES, check_temperature,
                      checked_fit_data, fit_logit_affine, fit_temperature_grid,
                      fit_temperature_nll, temper_scores)


class ScoreCalibrator:
    """A map of detection scores, the same for every class or per class:
    ``fit`` it to judged detections, ``apply`` it to scores.

    Args:
        params (Sequence[dict | None]): One parameter dict (class-agnostic)
            or one per class (``None``: that class keeps its scores).
        classwise (bool): Whether ``params`` are per class.
    """

    kind = ''

    def __init__(self, params: Sequence[Optional[dict]],
                 classwise: bool) -> None:
        self.params = [None if p is None else dict(p) for p in params]
        self.classwise = bool(classwise)
        if not self.classwise and len(self.params) != 1:
            raise ValueError(f'a class-agnostic {self.kind} calibrator has one'
                             f' parameter set, got {len(self.params)}')
        for p in self.params:
            if p is not None:
                self.check(p)

    @staticmethod
    def check(params: dict) -> None:
        """Raise ``ValueError`` for parameters that are not a valid map."""

    @staticmethod
    def fit_one(scores: np.ndarray, targets: np.ndarray, **options) -> dict:
        """The parameters of one map fitted to ``(scores, targets)``."""
        raise NotImplementedError

    @staticmethod
    def apply_one(scores: np.ndarray, params: dict) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def fit(cls,
            scores,
            labels,
            targets,
            num_classes: int,
            classwise: bool = True,
            **options) -> 'ScoreCalibrator':
        """Fit to judged detections.

        Args:
            scores: ``(N,)`` in ``[0, 1]``.
            labels: ``(N,)`` class indices in ``[0, num_classes)``.
            targets: ``(N,)`` hits (0/1) or IoUs.
            num_classes (int): Classes of the detector.
            classwise (bool): One map per class. Defaults to True.
            **options: Passed to the subclass's ``fit_one`` (the
                temperature's ``objective`` and ``n_bins``).
        """
        scores, targets = checked_fit_data(scores, targets)
        labels = to_numpy(labels, np.int64).ravel()
        if labels.shape != scores.shape:
            raise ValueError(f'labels {labels.shape} and scores '
                             f'{scores.shape} must have the same size')
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f'labels must lie in [0, {num_classes - 1}]')
        if not classwise:
            return cls([cls.fit_one(scores, targets, **options)],
                       classwise=False)
        return cls([
            cls.fit_one(scores[labels == k], targets[labels == k], **options)
            if np.any(labels == k) else None for k in range(num_classes)
        ],
                   classwise=True)

    def apply(self, scores, labels=None):
        """Calibrated scores; a tensor (same dtype and device) or an array
        in, the same out. ``labels`` are needed by class-wise ones."""
        values = to_numpy(scores).ravel()
        if not self.classwise:
            out = self.apply_one(values, self.params[0])
        else:
            if labels is None:
                raise ValueError(f'a class-wise {self.kind} calibrator needs '
                                 'the labels of the scores')
            classes = to_numpy(labels, np.int64).ravel()
            if values.shape != classes.shape:
                raise ValueError(f'scores {values.shape} and labels '
                                 f'{classes.shape} must have the same size')
            out = values.copy()
            if len(classes) and classes.max() >= len(self.params):
                raise ValueError(f'label {classes.max()} has no calibrator '
                                 f'({len(self.params)} classes fitted)')
            for k, p in enumerate(self.params):
                mine = classes == k
                if p is not None and mine.any():
                    out[mine] = self.apply_one(values[mine], p)
        if isinstance(scores, torch.Tensor):
            return torch.from_numpy(out).to(
                dtype=scores.dtype, device=scores.device).reshape(scores.shape)
        return out.reshape(np.shape(scores))

    def to_dict(self) -> dict:
        """Plain numbers and lists, for a config file."""
        return dict(
            type=self.kind, classwise=self.classwise, params=self.params)


class TemperatureCalibrator(ScoreCalibrator):
    """``sigmoid(logit(s) / T)``; params ``dict(temperature=T)``."""

    kind = 'temperature'

    @staticmethod
    def check(params: dict) -> None:
        check_temperature(params['temperature'])

    @staticmethod
    def fit_one(scores,
                targets,
                objective: str = 'nll',
                n_bins: int = 10) -> dict:
        """``T`` by ``objective``: ``'nll'`` (L-BFGS) or ``'d-ece'`` (grid
        search on the ECE of ``n_bins`` bins)."""
        if objective == 'nll':
            temperature, _ = fit_temperature_nll(scores, targets)
        elif objective == 'd-ece':
            temperature, _ = fit_temperature_grid(scores, targets, n_bins)
        else:
            raise ValueError(f'objective must be one of '
                             f'{TEMPERATURE_OBJECTIVES}, got {objective!r}')
        return dict(temperature=temperature)

    @staticmethod
    def apply_one(scores, params) -> np.ndarray:
        return temper_scores(scores, params['temperature'])


class PlattCalibrator(ScoreCalibrator):
    """``sigmoid(a * logit(s) + b)`` with ``a > 0``, fitted by binary
    cross-entropy; params ``dict(slope=a, intercept=b)``."""

    kind = 'platt'

    @staticmethod
    def check(params: dict) -> None:
        slope, intercept = float(params['slope']), float(params['intercept'])
        if not (np.isfinite(slope) and slope > 0 and np.isfinite(intercept)):
            raise ValueError('Platt scaling needs a finite slope > 0 and a '
                             f'finite intercept, got {params}')

    @staticmethod
    def fit_one(scores, targets) -> dict:
        slope, intercept, _ = fit_logit_affine(scores, targets, with_bias=True)
        return dict(slope=slope, intercept=intercept)

    @staticmethod
    def apply_one(scores, params) -> np.ndarray:
        logits = torch.logit(torch.from_numpy(scores), eps=1e-12)
        return torch.sigmoid(logits * params['slope'] +
                             params['intercept']).numpy()


class IsotonicCalibrator(ScoreCalibrator):
    """The non-decreasing step function closest (least squares) to the
    targets, linear between its knots and constant beyond them
    (scikit-learn's ``IsotonicRegression``, outputs in ``[0, 1]``); params
    ``dict(x=[...], y=[...])``, the knots."""

    kind = 'isotonic'

    @staticmethod
    def check(params: dict) -> None:
        x, y = np.asarray(params['x'], float), np.asarray(params['y'], float)
        if not (x.ndim == 1 and x.shape == y.shape and len(x)
                and np.all(np.diff(x) >= 0) and np.all(np.diff(y) >= 0)
                and np.all((y >= 0) & (y <= 1))):
            raise ValueError('isotonic knots must be non-empty, equally '
                             'many, non-decreasing x and y, y in [0, 1]')

    @staticmethod
    def fit_one(scores, targets) -> dict:
        model = IsotonicRegression(
            y_min=0.0, y_max=1.0, increasing=True,
            out_of_bounds='clip').fit(scores, targets)
        return dict(
            x=model.X_thresholds_.tolist(), y=model.y_thresholds_.tolist())

    @staticmethod
    def apply_one(scores, params) -> np.ndarray:
        # What IsotonicRegression.predict does with out_of_bounds='clip'.
        return np.interp(scores, params['x'], params['y'])


CALIBRATORS = {
    c.kind: c
    for c in (TemperatureCalibrator, PlattCalibrator, IsotonicCalibrator)
}


def build_calibrator(cfg: dict) -> ScoreCalibrator:
    """The calibrator of a ``to_dict()`` dict."""
    cfg = dict(cfg)
    kind = cfg.pop('type', None)
    if kind not in CALIBRATORS:
        raise ValueError(f'calibrator type must be one of '
                         f'{sorted(CALIBRATORS)}, got {kind!r}')
    return CALIBRATORS[kind](**cfg)
