"""Scheduled focal gamma (Mukhoti et al., NeurIPS 2020: FLS-532, FLS-531).

Sets the gamma of every focal-type classification loss in the model at the
given epochs (or iterations) and logs it as ``focal_gamma``.
"""
from bisect import bisect_right
from typing import Optional, Sequence

from mmdet.models.losses import FocalLoss
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from ...input_checks import check_number
from ...models.losses import AdaptiveFocalLoss
from ...models.losses.poly_loss import SigmoidFocalPolyLossBase
from .runner_model import unwrapped_model

# The paper's 350-epoch schedules (gamma 5 for 100 epochs, 3 for 150, then
# 2 or 1 for 100) scaled to MMDetection's 12-epoch 1x: 100/350 * 12 = 3.4
# and 250/350 * 12 = 8.6, rounded.
PRESETS = {
    'FLS-532': dict(milestones=(3, 9), gammas=(5.0, 3.0, 2.0)),
    'FLS-531': dict(milestones=(3, 9), gammas=(5.0, 3.0, 1.0)),
}


def set_focal_gamma(model, gamma: float) -> int:
    """Set gamma of every focal-type loss in ``model``; returns how many.

    ``AdaptiveFocalLoss`` gets it as the gamma of its highest ``pt`` band
    (its base gamma: the one well-classified samples see)."""
    count = 0
    for module in model.modules():
        if isinstance(module, (FocalLoss, SigmoidFocalPolyLossBase)):
            module.gamma = float(gamma)
            count += 1
        elif isinstance(module, AdaptiveFocalLoss):
            module.gammas = module.gammas[:-1] + (float(gamma), )
            count += 1
    return count


@HOOKS.register_module()
class FocalGammaScheduleHook(Hook):
    """Piecewise-constant gamma: ``gammas[i]`` from ``milestones[i - 1]``.

    Args:
        milestones (Sequence[int]): Epochs (or iterations) where gamma
            changes, increasing.
        gammas (Sequence[float]): One more than ``milestones``.
        by_epoch (bool): Milestones count epochs, else iterations.
        preset (str, optional): ``'FLS-532'`` or ``'FLS-531'`` for the
            paper's schedules scaled to 12 epochs, instead of the above.
    """

    priority = 'NORMAL'

    def __init__(self,
                 milestones: Sequence[int] = (),
                 gammas: Sequence[float] = (),
                 by_epoch: bool = True,
                 preset: Optional[str] = None) -> None:
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(f'preset must be one of {list(PRESETS)}, '
                                 f'got {preset!r}')
            milestones, gammas = (PRESETS[preset]['milestones'],
                                  PRESETS[preset]['gammas'])
        if len(gammas) != len(milestones) + 1:
            raise ValueError(f'{len(milestones)} milestones need '
                             f'{len(milestones) + 1} gammas, got {gammas}')
        if list(milestones) != sorted(set(milestones)):
            raise ValueError(f'milestones must increase, got {milestones}')
        self.milestones = tuple(milestones)
        self.gammas = tuple(
            check_number(g, f'gammas[{k}]', low=0.0)
            for k, g in enumerate(gammas))
        self.by_epoch = by_epoch

    def gamma_at(self, step: int) -> float:
        return self.gammas[bisect_right(self.milestones, step)]

    def _apply(self, runner, step: int) -> None:
        model = unwrapped_model(runner)
        gamma = self.gamma_at(step)
        if set_focal_gamma(model, gamma) == 0:
            raise RuntimeError('FocalGammaScheduleHook: the model has no '
                               'focal-type loss to schedule')
        runner.message_hub.update_scalar('train/focal_gamma', gamma)

    def before_train_epoch(self, runner) -> None:
        if self.by_epoch:
            self._apply(runner, runner.epoch)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        if self.by_epoch:
            # The gamma set for the epoch, logged with every iteration.
            runner.message_hub.update_scalar('train/focal_gamma',
                                             self.gamma_at(runner.epoch))
        else:
            self._apply(runner, runner.iter)
