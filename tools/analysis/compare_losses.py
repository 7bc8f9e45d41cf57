"""The loss comparison's command line (``make run``; the README's run
command), from a checkout: the same as ``python -m
mmdet_lossplug.loss_comparison`` where the package is installed
(:mod:`mmdet_lossplug.loss_comparison.cli` says what it does).

``make run`` is this without arguments: NEON's tree-crown tiles, two seeds
one-stage, one two-stage, about 30 minutes on two cores; ``--full`` runs
the study of docs/neon_trees (five seeds one-stage, three two-stage).
docs/tools.md shows a user's COCO dataset and the run list on a scheduler.
"""
import sys

from mmdet_lossplug.loss_comparison.cli import (main, parse_args, seeds_of,
                                                tables)

__all__ = ['main', 'parse_args', 'seeds_of', 'tables']

if __name__ == '__main__':
    sys.exit(main())
