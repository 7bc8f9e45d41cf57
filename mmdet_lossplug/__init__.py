"""Classification losses for MMDetection 3.x as drop-in config entries.

Importing the package registers every loss, head, hook, metric and model
wrapper in MMDetection's registries, so a config only needs::

    custom_imports = dict(
        imports=['mmdet_lossplug'], allow_failed_imports=False)

Without MMDetection installed nothing is registered, and the PyTorch op
(``mmdet_lossplug.ops``) still imports: it needs only torch.
"""
from importlib.util import find_spec

from .version import __version__

if find_spec('mmdet') is not None:
    from . import engine, evaluation, models  # noqa: F401  (registers)

__all__ = ['__version__']
