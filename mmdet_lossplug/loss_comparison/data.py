"""The NEON tree-crown tiles the loss comparison trains and validates on:
the tiling and the splits, stated once, and their preparation from
deepforest's images by ``tools/dataset_converters/neon_trees_to_coco.py``.

Two splits of the same four photographs (the converter's docstring says
how the lines are drawn): ``in_site`` trains on the left 70 % of every
image and validates on the right 30 %, whose top half (``calib``) fits
post-hoc calibrators and bottom half (``test``) scores everything;
``cross_site`` trains on one YELL image and validates on the three others.
"""
import os.path as osp
import subprocess
import sys

# The repository the comparison runs in: its configs and tools.
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONVERTER = osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                     'neon_trees_to_coco.py')
# 400 px tiles every 256 px: neighbours overlap by 144 px, more than the
# largest crown (107 px), so every crown lies whole in some tile.
TILE_SIZE = 400
TILE_STRIDE = 256
CLASSES = ('Tree', )

SPLITS = ('in_site', 'cross_site')
# The parts of the in-site validation strip: fit a calibrator on the first,
# score on the second.
CALIBRATION_PART, TEST_PART = 'calib', 'test'


def split_root(data_root: str, split: str) -> str:
    """Where the tiles of ``split`` are (what the configs' data_root reads
    from ``NEON_TREES_ROOT`` and ``NEON_TREES_SPLIT``)."""
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    return osp.join(data_root, 'in_site') if split == 'in_site' else data_root


def annotation_file(data_root: str, part: str) -> str:
    """The COCO annotations of ``part`` ('train', 'val', and in-site
    'calib' and 'test') of the split in ``data_root``."""
    return osp.join(data_root, 'annotations', f'instances_{part}.json')


def prepare_tiles(data_root: str) -> None:
    """Tile deepforest's NEON images into ``data_root`` (both splits)
    unless they are there already; the converter's output is shown only if
    it fails."""
    if osp.isfile(
            annotation_file(split_root(data_root, 'in_site'), TEST_PART)):
        return
    proc = subprocess.run([
        sys.executable, CONVERTER, data_root, '--tile',
        str(TILE_SIZE), '--stride',
        str(TILE_STRIDE)
    ],
                          capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'{CONVERTER} failed:\n{proc.stdout}{proc.stderr}')
