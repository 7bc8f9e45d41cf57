import pytest

from ..conftest import ROOT  # noqa: F401


@pytest.fixture(scope='session')
def neon_trees(tmp_path_factory):
    """deepforest's NEON images as tiles (tools/dataset_converters): the
    output folder and the COCO dicts of both splits."""
    import os.path as osp
    import sys
    sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
    import neon_trees_to_coco as tool
    out = tmp_path_factory.mktemp('neon_trees')
    return out, tool.convert(tool.deepforest_data_dir(), str(out), 400, 256)
