"""Loading local checkpoints without running their code.

``torch.load`` unpickles, and a pickle may run any code; mmengine 0.10
loads local checkpoints with ``weights_only=False`` whatever torch's
default. :func:`use_safe_checkpoint_loading` makes every local load
(``--resume``, ``load_from``, ``init_cfg=dict(type='Pretrained')``, the test
checkpoint) use ``weights_only=True`` with exactly the types an mmengine
checkpoint holds allowed. Our ``tools/train.py`` and ``tools/test.py`` call
it; with MMDetection's own tools, add the hook to the config::

    custom_hooks = [dict(type='SafeCheckpointLoadingHook')]
"""
import os.path as osp
import pickle

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

# The statistics HistoryBuffer defines; a process may register more.
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def history_buffer_method(owner, name: str):
    """``getattr`` as an mmengine checkpoint may use it, and no further:
    HistoryBuffer pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. A general getattr would let a
    checkpoint reach any attribute (``__globals__``, ``os.system``)."""
    methods = set(HISTORY_BUFFER_METHODS) | set(
        HistoryBuffer._statistics_methods)
    if owner is not HistoryBuffer or name not in methods:
        raise pickle.UnpicklingError(
            f'checkpoint asks for getattr({owner!r}, {name!r}); only '
            f'HistoryBuffer statistics methods {sorted(methods)} are allowed')
    return getattr(owner, name)


def mmengine_checkpoint_globals() -> list:
    """What an mmengine checkpoint pickles besides tensors and containers,
    read off a real run's checkpoint with
    ``torch.serialization.get_unsafe_globals_in_checkpoint``: the message
    hub's HistoryBuffer, its statistics methods (through getattr) and the
    numpy arrays, scalars and dtypes in it."""
    # numpy's reconstructors as pickle names them (numpy 1 and 2 differ)
    array_reconstruct = np.zeros(0).__reduce__()[0]
    scalar_reconstruct = np.float64(0).__reduce__()[0]
    # a dtype is rebuilt as np.dtype('f8') and set up as its own class
    numeric_dtypes = {
        type(np.dtype(code))
        for code in np.typecodes['AllInteger'] + np.typecodes['AllFloat'] + '?'
    }
    return [
        HistoryBuffer, np.ndarray, np.dtype, *numeric_dtypes,
        array_reconstruct, scalar_reconstruct,
        (history_buffer_method, 'builtins.getattr')
    ]


def load_local_checkpoint(filename: str, map_location=None):
    """mmengine's loader of local files, with ``weights_only=True``: a
    checkpoint that would run code is refused, whatever torch's default."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if torch.__version__ >= (2, 6):
            raise
        raise RuntimeError(
            f'{filename}: loading an mmengine checkpoint safely needs torch '
            f'>= 2.6 (safe globals by name), found {torch.__version__}; '
            'plain state dicts load with any torch') from err


def use_safe_checkpoint_loading() -> None:
    """Load local checkpoints (``--resume``, ``load_from``, the test
    checkpoint) with ``weights_only=True``, allowing exactly the types that
    mmengine's checkpoints hold (PyTorch's safe globals)."""
    if torch.__version__ >= (2, 6):
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)


@HOOKS.register_module()
class SafeCheckpointLoadingHook(Hook):
    """:func:`use_safe_checkpoint_loading` before the runner loads any
    weights: ``Runner.train`` and ``Runner.test`` call ``before_run``
    before initialising weights and loading ``load_from`` / ``resume``."""

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        use_safe_checkpoint_loading()
