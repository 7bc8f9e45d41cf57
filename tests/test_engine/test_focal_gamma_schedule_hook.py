"""FocalGammaScheduleHook: the schedule, the losses it reaches, and the
gamma changing at the right iteration of a real tools/train.py run."""
import os
import re

import pytest
import torch.nn as nn
from mmdet.models.losses import FocalLoss

from mmdet_lossplug.engine import FocalGammaScheduleHook, set_focal_gamma
from mmdet_lossplug.models.losses import (AdaptiveFocalLoss,
                                          Poly1StarFocalLoss, PolyFocalLoss)
from ..helpers import SHAPES_CONFIG, run_tool


def test_schedule_and_presets():
    hook = FocalGammaScheduleHook(milestones=(3, 9), gammas=(5, 3, 2))
    assert [hook.gamma_at(e)
            for e in range(12)] == [5.0] * 3 + [3.0] * 6 + [2.0] * 3
    fls531 = FocalGammaScheduleHook(preset='FLS-531')
    assert (fls531.milestones, fls531.gammas) == ((3, 9), (5.0, 3.0, 1.0))
    with pytest.raises(ValueError, match='gammas'):
        FocalGammaScheduleHook(milestones=(3, ), gammas=(5, ))
    with pytest.raises(ValueError, match='increase'):
        FocalGammaScheduleHook(milestones=(9, 3), gammas=(5, 3, 2))
    for bad in (float('nan'), -1.0):
        with pytest.raises(ValueError, match=r'gammas\[1\] must be a finite'):
            FocalGammaScheduleHook(milestones=(3, ), gammas=(5, bad))


def test_set_focal_gamma_reaches_every_focal_type_loss():
    model = nn.ModuleList([
        FocalLoss(),
        PolyFocalLoss(),
        Poly1StarFocalLoss(),
        AdaptiveFocalLoss(gammas=(5, 3)),
        nn.Linear(2, 2)
    ])
    assert set_focal_gamma(model, 1.5) == 4
    assert model[0].gamma == model[1].gamma == model[2].gamma == 1.5
    assert model[2].poly_terms()[0][0] == 2.5  # its polynomials follow
    assert model[3].gammas == (5.0, 1.5)


@pytest.mark.integration
def test_gamma_changes_at_the_milestone_in_a_real_run(tmp_path, shapes_root):
    config = tmp_path / 'scheduled.py'
    config.write_text(
        f"_base_ = '{SHAPES_CONFIG}'\n"
        'custom_hooks = [dict(type="FocalGammaScheduleHook", by_epoch=False,'
        ' milestones=(2, ), gammas=(5.0, 3.0))]\n'
        'model = dict(bbox_head=dict(loss_cls=dict(_delete_=True,'
        ' type="PolyFocalLoss", gamma=2.0, alpha=0.25, epsilon=-1.0)))\n')
    log = run_tool(
        'tools/train.py',
        str(config),
        '--work-dir',
        str(tmp_path / 'work'),
        '--cfg-options',
        'train_cfg.max_iters=4',
        'train_cfg.val_interval=100',
        'train_dataloader.batch_size=2',
        'default_hooks.logger.interval=1',
        env=dict(os.environ, SHAPES_ROOT=shapes_root))
    logged = re.findall(r'Iter\(train\) \[(\d)/4\].*?focal_gamma: ([\d.]+)',
                        log)
    assert [(int(i), float(g)) for i, g in logged] == [(1, 5.0), (2, 5.0),
                                                       (3, 3.0), (4, 3.0)]
