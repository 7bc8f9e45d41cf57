"""``python -m mmdet_lossplug.loss_comparison``: the loss comparison's
command line (:mod:`.cli`), where the package is installed."""
import sys

from .cli import main

sys.exit(main())
