"""tools/dataset_converters/neon_trees_to_coco.py on the real deepforest
images: every XML box is kept, whole in some tile of its region; clipped
boxes are the intersection with their tile and obey the sliver rule; no
pixel is in the training and the validation tiles of either split, nor in
the calibration and the test part of the in-site one."""
import functools
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


@functools.lru_cache()
def xml_boxes(name):
    """The boxes read directly from the XML (independent of the tool)."""
    root = ET.parse(osp.join(tool.deepforest_data_dir(),
                             name + '.xml')).getroot()
    return np.array([[
        float(o.find('bndbox').find(k).text)
        for k in ('xmin', 'ymin', 'xmax', 'ymax')
    ] for o in root.iter('object')])


def test_cross_site_split_by_image(neon_trees):
    _, datasets = neon_trees
    sources = {
        split: {img['source']
                for img in coco['images']}
        for split, coco in datasets['cross_site'].items()
    }
    assert sources['train'] == set(tool.TRAIN_IMAGES)
    assert sources['val'] == set(tool.VAL_IMAGES)
    assert not sources['train'] & sources['val']
    assert sources['train'] | sources['val'] == set(XML_COUNTS)


def test_files_on_disk(neon_trees):
    out, datasets = neon_trees
    for folder, layout in ((out, 'cross_site'), (out / 'in_site', 'in_site')):
        for split, coco in datasets[layout].items():
            on_disk = json.loads((folder / 'annotations' /
                                  f'instances_{split}.json').read_text())
            assert on_disk == coco
            tiles = folder / ('train' if split == 'train' else 'val')
            for img in coco['images'][:3] + coco['images'][-3:]:
                with Image.open(tiles / img['file_name']) as tile:
                    assert tile.size == (img['width'], img['height'])
            assert [c['name'] for c in coco['categories']] == ['Tree']


def whole_boxes(coco):
    """(source image, XML box index) of the boxes some tile holds whole."""
    images = {img['id']: img for img in coco['images']}
    whole = set()
    for ann in coco['annotations']:
        img = images[ann['image_id']]
        x0, y0 = img['offset']
        x, y, w, h = ann['bbox']
        source = xml_boxes(img['source'])[ann['source_box']]
        if np.allclose([x + x0, y + y0, x + w + x0, y + h + y0], source):
            whole.add((img['source'], ann['source_box']))
    return whole


def test_every_box_kept_and_whole_in_some_tile(neon_trees):
    _, datasets = neon_trees
    for split, names in (('train', tool.TRAIN_IMAGES), ('val',
                                                        tool.VAL_IMAGES)):
        assert whole_boxes(datasets['cross_site'][split]) == {
            (name, i)
            for name in names
            for i in range(XML_COUNTS[name])
        }


def test_in_site_boxes_whole_unless_a_line_cuts_them(neon_trees):
    _, datasets = neon_trees
    in_site = datasets['in_site']
    found = {
        part: whole_boxes(in_site[part])
        for part in ('train', 'calib', 'test')
    }
    for name, count in XML_COUNTS.items():
        boxes = xml_boxes(name)
        assert len(boxes) == count
        width, height = Image.open(
            osp.join(tool.deepforest_data_dir(), name + '.png')).size
        # The lines drawn independently: 70 % of the width, half the height.
        line, middle = round(0.7 * width), height // 2
        expected = {
            'train': boxes[:, 2] <= line,
            'calib': (boxes[:, 0] >= line) & (boxes[:, 3] <= middle),
            'test': (boxes[:, 0] >= line) & (boxes[:, 1] >= middle),
        }
        for part, inside in expected.items():
            got = {i for source, i in found[part] if source == name}
            assert got == set(np.flatnonzero(inside).tolist()), (name, part)


def pixel_masks(coco, name, size):
    """Per in-site part, the pixels of ``name`` that its tiles show."""
    masks = {}
    for img in coco['images']:
        if img['source'] != name:
            continue
        mask = masks.setdefault(img.get('part'), np.zeros(size[::-1], bool))
        x0, y0 = img['offset']
        mask[y0:y0 + img['height'], x0:x0 + img['width']] = True
    return masks


def test_no_validation_pixel_in_training(neon_trees):
    _, datasets = neon_trees
    for name in XML_COUNTS:
        size = Image.open(osp.join(tool.deepforest_data_dir(),
                                   name + '.png')).size
        cross = {
            split:
            pixel_masks(datasets['cross_site'][split], name,
                        size).get(None, np.zeros(size[::-1], bool))
            for split in ('train', 'val')
        }
        assert not (cross['train'] & cross['val']).any()
        assert (cross['train'] | cross['val']).all()

        train = pixel_masks(datasets['in_site']['train'], name, size)
        val = pixel_masks(datasets['in_site']['val'], name, size)
        # Every site in each part; no pixel in two parts; all pixels used.
        assert set(train) == {'train'} and set(val) == {'calib', 'test'}
        parts = [train['train'], val['calib'], val['test']]
        assert sum(m.astype(int) for m in parts).max() == 1, name
        assert np.logical_or.reduce(parts).all(), name
        # Training keeps 70 % of the columns (to the pixel).
        assert abs(train['train'].any(axis=0).mean() - 0.7) < 1 / size[0]


def test_calibration_and_test_halves_partition_val(neon_trees):
    _, datasets = neon_trees
    in_site = datasets['in_site']
    val_images = {img['id']: img for img in in_site['val']['images']}
    val_anns = {a['id']: a for a in in_site['val']['annotations']}
    seen_images, seen_anns = set(), set()
    for part in ('calib', 'test'):
        coco = in_site[part]
        for img in coco['images']:
            assert val_images[img['id']] == img and img['part'] == part
        for ann in coco['annotations']:
            assert val_anns[ann['id']] == ann
        image_ids = {img['id'] for img in coco['images']}
        assert {a['image_id'] for a in coco['annotations']} <= image_ids
        assert not image_ids & seen_images
        seen_images |= image_ids
        seen_anns |= {a['id'] for a in coco['annotations']}
        assert {img['source'] for img in coco['images']} == set(XML_COUNTS)
    assert seen_images == set(val_images) and seen_anns == set(val_anns)


def test_clipping_and_sliver_rule(neon_trees):
    _, datasets = neon_trees
    for coco in (*datasets['cross_site'].values(),
                 *datasets['in_site'].values()):
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
