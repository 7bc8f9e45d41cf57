"""Loading local checkpoints without running their code.

``torch.load`` unpickles, and a pickle may run any code; mmengine 0.10
loads local checkpoints with ``weights_only=False`` whatever torch's
default. :func:`use_safe_checkpoint_loading` makes every local load
(``--resume``, ``load_from``, ``init_cfg=dict(type='Pretrained')``, the test
checkpoint) resolve only the globals a checkpoint of tensors and mmengine's
bookkeeping holds: on torch >= 2.6 through ``weights_only=True`` with
those types allowed by name; on older torch (whose weights-only loader
takes no additions by name) through an unpickler restricted to torch's own
weights-only list plus the same types. Anything else is refused before it
is called. Our ``tools/train.py`` and ``tools/test.py`` call
it; with MMDetection's own tools, add the hook to the config::

    custom_hooks = [dict(type='SafeCheckpointLoadingHook')]
"""
import _compat_pickle
import codecs
import os.path as osp
import pickle
from collections import Counter
from types import ModuleType

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from ..torch_features import HAS_SAFE_GLOBALS_BY_NAME

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
    numpy arrays, scalars and dtypes in it; and ``collections.Counter``,
    the milestones of a multi-step schedule, which torch >= 2.6 allows by
    itself and older torch's weights-only list does not."""
    # numpy's reconstructors as pickle names them (numpy 1 and 2 differ)
    array_reconstruct = np.zeros(0).__reduce__()[0]
    scalar_reconstruct = np.float64(0).__reduce__()[0]
    # a dtype is rebuilt as np.dtype('f8') and set up as its own class
    numeric_dtypes = {
        type(np.dtype(code))
        for code in np.typecodes['AllInteger'] + np.typecodes['AllFloat'] + '?'
    }
    return [
        HistoryBuffer, Counter, np.ndarray, np.dtype, *numeric_dtypes,
        array_reconstruct, scalar_reconstruct,
        (history_buffer_method, 'builtins.getattr')
    ]


def _pickled_names(safe_globals: list) -> dict:
    """``{'module.name': object}`` for an allow-list as
    ``torch.serialization.add_safe_globals`` takes it (objects or
    ``(object, name)`` pairs). numpy 2 pickles ``numpy.core`` as
    ``numpy._core``: both spellings resolve to the local object."""
    names = {}
    numpy_core = ('numpy.core.', 'numpy._core.')
    for entry in safe_globals:
        if isinstance(entry, tuple):
            obj, name = entry
        else:
            obj, name = entry, f'{entry.__module__}.{entry.__qualname__}'
        names[name] = obj
        for old, new in (numpy_core, numpy_core[::-1]):
            if name.startswith(old):
                names[new + name[len(old):]] = obj
    return names


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only torch's weights-only globals (tensors, storages,
    dtypes, ``OrderedDict``) and :func:`mmengine_checkpoint_globals`: the
    loader for torch < 2.6. A pickle calls nothing it did not look up
    here, so no other callable can run."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.allowed = _restricted_globals()

    def find_class(self, module: str, name: str):
        # torch.save's protocol 2 writes Python 2 names (__builtin__), which
        # pickle's own find_class maps back
        module, name = _compat_pickle.NAME_MAPPING.get((module, name),
                                                       (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return self.allowed[f'{module}.{name}']
        except KeyError:
            raise pickle.UnpicklingError(
                f'Weights only load failed: the checkpoint asks for '
                f'{module}.{name}, which a checkpoint of tensors and '
                'mmengine bookkeeping never holds; it is refused because '
                'unpickling it could run code') from None


def _restricted_globals() -> dict:
    # torch's own weights-only list (torch < 2.6 has no public one); bytes
    # in a protocol 2 pickle (numpy arrays' data) come as _codecs.encode
    from torch._weights_only_unpickler import _get_allowed_globals
    return {
        **_get_allowed_globals(), '_codecs.encode': codecs.encode,
        **_pickled_names(mmengine_checkpoint_globals())
    }


def _restricted_load(file, **kwargs):
    return RestrictedUnpickler(file, **kwargs).load()


# What torch.load takes as pickle_module: a module with an Unpickler (which
# torch subclasses) and load.
restricted_pickle = ModuleType(
    'mmdet_lossplug_restricted_pickle',
    'pickle, resolving only the globals of a checkpoint of tensors and '
    'mmengine bookkeeping')
restricted_pickle.Unpickler = RestrictedUnpickler
restricted_pickle.load = _restricted_load


def load_local_checkpoint(filename: str, map_location=None):
    """mmengine's loader of local files, resolving only the allowed globals
    (see the module docstring): a checkpoint that would run code is
    refused, whatever torch's default."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if HAS_SAFE_GLOBALS_BY_NAME:
        with torch.serialization.safe_globals(mmengine_checkpoint_globals()):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    return torch.load(
        filename,
        map_location=map_location,
        pickle_module=restricted_pickle,
        weights_only=False)


def use_safe_checkpoint_loading() -> None:
    """Load local checkpoints (``--resume``, ``load_from``, the test
    checkpoint) with :func:`load_local_checkpoint`, allowing exactly the
    types that mmengine's checkpoints hold."""
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
