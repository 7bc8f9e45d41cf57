"""The loss comparison in pieces: the rows of a comparison (``rows``),
the data it trains and scores on, a user's COCO dataset or NEON's tiles
(``data``), one run in its worker (``training``), runs side by side
(``process_pool``), all of them or the finished ones (``study``), the tables
(``tables``, ``per_class``) and the command line (``cli``: ``python -m
mmdet_lossplug.loss_comparison``; ``tools/analysis/compare_losses.py``,
``compare_numeric_paths.py`` and ``plot_loss_comparison.py`` in a
checkout)."""
from .data import (CLASSES, SPLITS, TILE_SIZE, TILE_STRIDE, CocoData,
                   prepare_coco, prepare_tiles, shipped_file, split_root)
from .per_class import per_class_metrics
from .rows import (ANCHOR_FREE, COMPARISONS, DR_HEADS, ONE_STAGE, TWO_STAGE,
                   Comparison)
from .study import collect_comparison, run_comparison
from .tables import (COLUMNS, FIT_COLUMNS, TABLE_COLUMNS, format_differences,
                     format_movement, format_per_class, format_surviving,
                     format_table, reported)

__all__ = [
    'CLASSES', 'SPLITS', 'TILE_SIZE', 'TILE_STRIDE', 'CocoData',
    'prepare_coco', 'prepare_tiles', 'shipped_file', 'split_root',
    'per_class_metrics', 'Comparison', 'COMPARISONS', 'ONE_STAGE', 'TWO_STAGE',
    'ANCHOR_FREE', 'DR_HEADS', 'run_comparison', 'collect_comparison',
    'COLUMNS', 'FIT_COLUMNS', 'TABLE_COLUMNS', 'format_table',
    'format_per_class', 'format_differences', 'format_movement',
    'format_surviving', 'reported'
]
