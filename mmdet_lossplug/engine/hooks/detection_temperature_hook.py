"""Apply a fitted temperature to a detector's scores at val/test time.

``tools/calibrate.py`` writes a config that adds this hook. It wraps the
model's forward (the call ``test_step`` makes in ``'predict'`` mode) with a
PyTorch forward hook that rescales ``pred_instances.scores`` of the
returned data samples, so it works for any detector and under a model
wrapper, and is removed again when the loop ends.
"""
from mmdet.registry import HOOKS
from mmdet.structures import DetDataSample
from mmengine.hooks import Hook

from ...evaluation.temperature_scaling import check_temperature, temper_scores
from .runner_model import unwrapped_model


@HOOKS.register_module()
class DetectionTemperatureHook(Hook):
    """``scores <- sigmoid(logit(scores) / temperature)`` for every
    prediction of the validation and test loops.

    Args:
        temperature (float): ``T > 0``; ``T > 1`` softens over-confident
            scores.
    """

    priority = 'NORMAL'

    def __init__(self, temperature: float) -> None:
        self.temperature = check_temperature(temperature)
        self._handle = None

    def _temper_outputs(self, module, args, outputs):
        if not isinstance(outputs, list):  # 'loss' or 'tensor' mode
            return None
        for sample in outputs:
            if isinstance(sample,
                          DetDataSample) and 'pred_instances' in sample:
                pred = sample.pred_instances
                pred.scores = temper_scores(pred.scores, self.temperature)
        return outputs

    def _attach(self, runner) -> None:
        model = unwrapped_model(runner)
        self._handle = model.register_forward_hook(self._temper_outputs)

    def _detach(self, runner) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    before_val = _attach
    before_test = _attach
    after_val = _detach
    after_test = _detach
