"""Classification losses for MMDetection 3.x as drop-in config entries.

Importing the package registers every loss, head, hook, metric and model
wrapper in MMDetection's registries, so a config only needs::

    custom_imports = dict(
        imports=['mmdet_lossplug'], allow_failed_imports=False)
"""
from . import engine, evaluation, models  # noqa: F401  (registers modules)
from .version import __version__

__all__ = ['__version__']
