"""Fixtures shared by the whole suite (helpers are in tests/helpers.py)."""
import pytest

from .helpers import run_tool


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory):
    """A small generated dataset in COCO and VOC formats."""
    out = tmp_path_factory.mktemp('shapes')
    run_tool('tools/misc/generate_shapes_dataset.py', str(out), '--num-train',
             '16', '--num-val', '8', '--seed', '0')
    return str(out)
