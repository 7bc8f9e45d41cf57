"""Apply a fitted post-hoc calibrator to a detector's scores at val/test
time.

``tools/calibrate.py`` writes a config that adds one of these hooks. It
wraps the model's forward (the call ``test_step`` makes in ``'predict'``
mode) with a PyTorch forward hook that maps ``pred_instances.scores`` of
the returned data samples (by their ``labels`` for class-wise
calibrators), so it works for any detector and under a model wrapper, and
is removed again when the loop ends.
"""
from mmdet.registry import HOOKS
from mmdet.structures import DetDataSample
from mmengine.hooks import Hook

from ...calibration import build_calibrator
from .runner_model import unwrapped_model


@HOOKS.register_module()
class DetectionScoreCalibrationHook(Hook):
    """``scores <- calibrator.apply(scores, labels)`` for every prediction of
    the validation and test loops.

    Args:
        calibrator (dict): A calibrator as
            ``ScoreCalibrator.to_dict()`` writes it, e.g.
            ``dict(type='platt', classwise=True, params=[dict(slope=0.5,
            intercept=0.1), ...])``.
    """

    priority = 'NORMAL'

    def __init__(self, calibrator: dict) -> None:
        self.calibrator = build_calibrator(calibrator)
        self._handle = None

    def _calibrate_outputs(self, module, args, outputs):
        if not isinstance(outputs, list):  # 'loss' or 'tensor' mode
            return None
        for sample in outputs:
            if isinstance(sample,
                          DetDataSample) and 'pred_instances' in sample:
                pred = sample.pred_instances
                pred.scores = self.calibrator.apply(pred.scores,
                                                    pred.get('labels'))
        return outputs

    def _attach(self, runner) -> None:
        model = unwrapped_model(runner)
        self._handle = model.register_forward_hook(self._calibrate_outputs)

    def _detach(self, runner) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    before_val = _attach
    before_test = _attach
    after_val = _detach
    after_test = _detach
