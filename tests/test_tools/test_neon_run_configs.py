"""make run's NEON default builds the same run configs as before the
comparison took a user's dataset (issue 26): every row of every
comparison, on both splits, resolved by ``build_config`` and hashed.

The pinned digest was computed on main's code (commit cde1a61, the base
of issue 26, with ``PYTHONPATH`` at that checkout) by
:func:`neon_configs_digest` below, on the stack of
requirements/constraints.txt (mmdet 3.3, mmengine 0.10.7): the configs'
``mmdet::`` bases are part of what is hashed, so another mmdet can change
it without any change here. The hash is of ``cfg.to_dict()`` as sorted
JSON, not of ``pretty_text`` (which yapf formats). The full check, every
seed at 800 and 2 iterations on both numeric paths with the runs'
fingerprints, was /tmp/dump_fp.py: 400 runs, configs and fingerprints
equal (docs/development.md)."""
import hashlib
import json

from mmdet_lossplug.loss_comparison import COMPARISONS
from mmdet_lossplug.loss_comparison.training import build_config, run_dir

NEON_CONFIGS_DIGEST = ('5056633ecf3f2a449667ff7ce491a8c5'
                       'a53596a22197a5e4f24a79382cfb06ca')
WORK = '/neon/compare_losses'


def neon_configs_digest(environ) -> str:
    """The sha256 of every (split, comparison, row) run config at seed 0
    and 800 iterations, in order; ``environ`` is os.environ or pytest's
    monkeypatch (setenv)."""
    described = []
    environ.setenv('NEON_TREES_ROOT', f'{WORK}/data')
    environ.setenv('PRETRAINED_ROOT', '/pretrained')
    for split in ('in_site', 'cross_site'):
        environ.setenv('NEON_TREES_SPLIT', split)
        for name, comparison in COMPARISONS.items():
            for loss in comparison.rows:
                directory = run_dir(f'{WORK}/{name}/{split}', loss, 0)
                cfg = build_config(comparison, loss, 0, 800, directory)
                described.append([
                    split, name, loss,
                    json.dumps(cfg.to_dict(), sort_keys=True, default=repr)
                ])
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()


def test_the_neon_default_builds_the_same_run_configs(monkeypatch):
    assert neon_configs_digest(monkeypatch) == NEON_CONFIGS_DIGEST
