"""The NEON tree-crown tiles the loss comparison trains and validates on:
the tiling, stated once, and their preparation from deepforest's images by
``tools/dataset_converters/neon_trees_to_coco.py``."""
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


def annotation_file(data_root: str, split: str) -> str:
    """The COCO annotations of ``split`` ('train' or 'val')."""
    return osp.join(data_root, 'annotations', f'instances_{split}.json')


def prepare_tiles(data_root: str) -> None:
    """Tile deepforest's NEON images into ``data_root`` unless they are
    there already; the converter's output is shown only if it fails."""
    if osp.isfile(annotation_file(data_root, 'val')):
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
