import pytest

from ..helpers import load_tool


@pytest.fixture(scope='session')
def neon_trees(tmp_path_factory):
    """deepforest's NEON images as tiles (tools/dataset_converters): the
    output folder and the COCO dicts of both splits."""
    tool = load_tool('dataset_converters', 'neon_trees_to_coco.py')
    out = tmp_path_factory.mktemp('neon_trees')
    return out, tool.convert(tool.deepforest_data_dir(), str(out), 400, 256)
