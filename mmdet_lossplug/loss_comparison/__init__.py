"""The README's run command in pieces: the rows of a comparison
(``rows``), the NEON tiles (``data``), one run in its worker
(``training``), runs side by side (``runner``), all of them (``study``)
and the tables (``tables``). ``tools/analysis/compare_losses.py``,
``compare_numeric_paths.py`` and ``plot_loss_comparison.py`` are their
command lines."""
from .data import (CLASSES, SPLITS, TILE_SIZE, TILE_STRIDE, prepare_tiles,
                   split_root)
from .rows import COMPARISONS, ONE_STAGE, TWO_STAGE, Comparison
from .study import run_comparison
from .tables import (COLUMNS, FIT_COLUMNS, TABLE_COLUMNS, format_differences,
                     format_movement, format_surviving, format_table, reported)

__all__ = [
    'CLASSES', 'SPLITS', 'TILE_SIZE', 'TILE_STRIDE', 'prepare_tiles',
    'split_root', 'Comparison', 'COMPARISONS', 'ONE_STAGE', 'TWO_STAGE',
    'run_comparison', 'COLUMNS', 'FIT_COLUMNS', 'TABLE_COLUMNS',
    'format_table', 'format_differences', 'format_movement',
    'format_surviving', 'reported'
]
