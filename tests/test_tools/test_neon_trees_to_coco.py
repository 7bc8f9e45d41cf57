"""tools/dataset_converters/neon_trees_to_coco.py on the real deepforest
images: every XML box is kept, whole in some tile; clipped boxes are the
intersection with their tile and obey the sliver rule; no image is in both
splits."""
import json
import os.path as osp
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from ..helpers import load_tool

pytestmark = pytest.mark.integration  # runs the tools / trains

tool = load_tool('dataset_converters', 'neon_trees_to_coco.py')

# The images and box counts deepforest 2.1.0 ships (issue 13).
XML_COUNTS = {
    '2019_YELL_2_528000_4978000_image_crop2': 574,
    '2019_YELL_2_541000_4977000_image_crop': 279,
    'OSBS_029': 61,
    'SOAP_061': 37,
}


def xml_boxes(name):
    """The boxes read directly from the XML (independent of the tool)."""
    root = ET.parse(osp.join(tool.deepforest_data_dir(),
                             name + '.xml')).getroot()
    return np.array([[
        float(o.find('bndbox').find(k).text)
        for k in ('xmin', 'ymin', 'xmax', 'ymax')
    ] for o in root.iter('object')])


def test_split_by_image_and_files_on_disk(neon_trees):
    out, datasets = neon_trees
    sources = {
        split: {img['source']
                for img in coco['images']}
        for split, coco in datasets.items()
    }
    assert sources['train'] == set(tool.TRAIN_IMAGES)
    assert sources['val'] == set(tool.VAL_IMAGES)
    assert not sources['train'] & sources['val']
    assert sources['train'] | sources['val'] == set(XML_COUNTS)
    for split, coco in datasets.items():
        on_disk = json.loads(
            (out / 'annotations' / f'instances_{split}.json').read_text())
        assert on_disk == coco
        for img in coco['images'][:3]:
            with Image.open(out / split / img['file_name']) as tile:
                assert tile.size == (img['width'], img['height'])
    assert [c['name'] for c in datasets['val']['categories']] == ['Tree']


def test_every_box_kept_and_whole_in_some_tile(neon_trees):
    _, datasets = neon_trees
    for coco in datasets.values():
        images = {img['id']: img for img in coco['images']}
        by_source = {}
        for ann in coco['annotations']:
            img = images[ann['image_id']]
            by_source.setdefault(img['source'], []).append((img, ann))
        for name, anns in by_source.items():
            boxes = xml_boxes(name)
            assert len(boxes) == XML_COUNTS[name]
            whole = set()
            for img, ann in anns:
                x0, y0 = img['offset']
                x, y, w, h = ann['bbox']
                source = boxes[ann['source_box']]
                if np.allclose([x + x0, y + y0, x + w + x0, y + h + y0],
                               source):
                    whole.add(ann['source_box'])
            assert whole == set(range(XML_COUNTS[name])), name


def test_clipping_and_sliver_rule(neon_trees):
    _, datasets = neon_trees
    for coco in datasets.values():
        kept = {
            (a['image_id'], a['source_box']): a['bbox']
            for a in coco['annotations']
        }
        for img in coco['images']:
            boxes = xml_boxes(img['source'])
            x0, y0 = img['offset']
            w, h = img['width'], img['height']
            # Intersection of every XML box with the tile, in tile pixels.
            ix1 = np.maximum(boxes[:, 0], x0) - x0
            iy1 = np.maximum(boxes[:, 1], y0) - y0
            ix2 = np.minimum(boxes[:, 2], x0 + w) - x0
            iy2 = np.minimum(boxes[:, 3], y0 + h) - y0
            iw, ih = ix2 - ix1, iy2 - iy1
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            expected = (iw >= 4) & (ih >= 4) & (
                np.clip(iw, 0, None) * np.clip(ih, 0, None) >= 0.5 * area)
            for index in np.flatnonzero(expected):
                assert kept.pop((img['id'], int(index))) == pytest.approx(
                    [ix1[index], iy1[index], iw[index], ih[index]])
        assert not kept, f'boxes kept against the rule: {list(kept)[:3]}'


def test_tiles_cover_the_image_with_overlap():
    assert tool.tile_starts(400, 400, 256) == [0]
    assert tool.tile_starts(1035, 400, 256) == [0, 256, 512, 635]
    with pytest.raises(ValueError, match='stride'):
        tool.convert('unused', 'unused', 400, 500)
