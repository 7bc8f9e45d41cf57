"""DetectionScoreCalibrationHook tempers predicted scores only while a
val/test loop runs, through any model wrapper, and leaves training outputs
alone; it applies a class-wise calibrator by label."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmdet_lossplug.engine import DetectionScoreCalibrationHook


def _temperature(temperature):
    return dict(
        type='temperature',
        classwise=False,
        params=[dict(temperature=temperature)])


class _Detector(nn.Module):

    def forward(self, scores, mode='predict'):
        if mode == 'loss':
            return dict(loss=scores.sum())
        sample = DetDataSample()
        sample.pred_instances = InstanceData(scores=scores.clone())
        return [sample]


def test_tempers_only_inside_the_loop():
    model = _Detector()
    runner = SimpleNamespace(model=model)
    hook = DetectionScoreCalibrationHook(_temperature(2.0))
    scores = torch.tensor([0.2, 0.5, 0.9])
    expected = torch.sigmoid(torch.logit(scores) / 2)
    hook.before_test(runner)
    torch.testing.assert_close(
        model(scores)[0].pred_instances.scores, expected)
    assert model(scores, mode='loss')['loss'] == scores.sum()
    hook.after_test(runner)
    torch.testing.assert_close(model(scores)[0].pred_instances.scores, scores)
    hook.before_val(runner)
    torch.testing.assert_close(
        model(scores)[0].pred_instances.scores, expected)
    hook.after_val(runner)
    with pytest.raises(ValueError, match='temperature'):
        DetectionScoreCalibrationHook(_temperature(0))


class _LabelledDetector(nn.Module):

    def forward(self, scores, labels, mode='predict'):
        sample = DetDataSample()
        sample.pred_instances = InstanceData(
            scores=scores.clone(), labels=labels)
        return [sample]


def test_applies_a_classwise_calibrator_by_label():
    model = _LabelledDetector()
    hook = DetectionScoreCalibrationHook(
        dict(
            type='platt',
            classwise=True,
            params=[dict(slope=0.5, intercept=1.0), None]))
    scores = torch.tensor([0.2, 0.9, 0.9])
    labels = torch.tensor([0, 0, 1])
    hook.before_val(SimpleNamespace(model=model))
    out = model(scores, labels)[0].pred_instances.scores
    # Class 0: sigmoid(0.5 * logit(s) + 1); class 1 has no calibrator.
    expected = torch.sigmoid(0.5 * torch.logit(scores[:2]) + 1)
    torch.testing.assert_close(out[:2], expected)
    assert out[2] == scores[2]
    hook.after_val(SimpleNamespace(model=model))
    torch.testing.assert_close(
        model(scores, labels)[0].pred_instances.scores, scores)
