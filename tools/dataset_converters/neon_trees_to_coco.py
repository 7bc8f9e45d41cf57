"""Tile the NEON tree-crown images that ship with ``deepforest`` (MIT code,
CC0 imagery; Pascal VOC XML boxes) into two COCO splits of the same four
images, each keeping every validation pixel out of training.

    pip install --no-deps deepforest==2.1.0   # only its data files are used
    python tools/dataset_converters/neon_trees_to_coco.py data/neon_trees
        [--tile 400] [--stride 256] [--source DIR]

In-site (``OUT/in_site/``): a vertical line at 70 % of its width cuts every
image. Train: the left 70 % of all four images; val: the right 30 % of all
four, so every site is in both and the validation measures the detector on
the stands it was trained on, not the transfer to others. The val strip is
cut again at half its height: the top half is the calibration part
(``instances_calib.json``, where a post-hoc calibrator is fitted) and the
bottom half the test part (``instances_test.json``, where it is scored), so
that no crown is in both; ``instances_val.json`` holds both parts, with the
same image and annotation ids. A vertical line keeps the two halves of the
val strip about equally large; a line at 70 % follows the probe of issue 18.

Cross-site (``OUT/``, the layout the run command reads): train: the large
YELL crop; val: the other YELL crop and the single OSBS and SOAP images,
which no training tile shows (other stands and other sites; a harder test).

One class, 'Tree': SOAP's 'Alive' and 'Dead' labels are merged into it.

Tiles are ``tile`` px squares every ``stride`` px, the last row and column
flush with the edge of their region (narrower where the region is), so
neighbours overlap by at least ``tile - stride`` px: every box no larger
than that lies whole in some tile of its region (crowns are at most 107 px;
the default overlap is 144). No tile crosses a region's edge: a crown cut by
the in-site line (28 of the 951) or the calibration / test line (10 more)
appears clipped on each side and whole on neither. A box cut by a tile
edge is clipped to it and kept only if at least half its area and at least
4 px per side remain; smaller pieces are slivers a detector cannot be
asked to find (the tile holding the whole box keeps it). Validation tiles
overlap as training tiles do, for the same reason: every crown lies whole
in some tile, the object the detector learnt to find; the price is that a
crown in an overlap is scored once per tile that holds it (whole or
clipped), as in the cross-site val.
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Dict, List, Tuple

from PIL import Image

TRAIN_IMAGES = ('2019_YELL_2_528000_4978000_image_crop2', )
VAL_IMAGES = ('2019_YELL_2_541000_4977000_image_crop', 'OSBS_029', 'SOAP_061')
ALL_IMAGES = TRAIN_IMAGES + VAL_IMAGES
IN_SITE_DIR = 'in_site'
IN_SITE_TRAIN_FRACTION = 0.7
CLASSES = ('Tree', )
MIN_KEPT_FRACTION = 0.5
MIN_SIDE = 4


def deepforest_data_dir() -> str:
    """deepforest/data of the installed wheel, without importing deepforest
    (its import pulls in heavy dependencies we do not install)."""
    spec = importlib.util.find_spec('deepforest')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            'deepforest is not installed: pip install --no-deps '
            'deepforest==2.1.0, or pass --source')
    return osp.join(list(spec.submodule_search_locations)[0], 'data')


def read_voc(xml_file: str) -> Tuple[int, int, List[List[float]]]:
    """Width, height and the ``[x1, y1, x2, y2]`` boxes of one VOC file.
    Every label counts as 'Tree'."""
    root = ET.parse(xml_file).getroot()
    size = root.find('size')
    width = int(size.find('width').text)
    height = int(size.find('height').text)
    boxes = []
    for obj in root.iter('object'):
        bnd = obj.find('bndbox')
        box = [
            float(bnd.find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax')
        ]
        if not (0 <= box[0] < box[2] <= width
                and 0 <= box[1] < box[3] <= height):
            raise ValueError(f'{xml_file}: box {box} is empty or outside '
                             f'the {width}x{height} image')
        boxes.append(box)
    return width, height, boxes


def tile_starts(length: int, tile: int, stride: int) -> List[int]:
    """Offsets every ``stride`` px, the last one flush with the edge."""
    if length <= tile:
        return [0]
    return list(range(0, length - tile, stride)) + [length - tile]


def clip_to_tile(box, x0: int, y0: int, tile_w: int, tile_h: int):
    """``box`` in tile coordinates, clipped to it, or None for a sliver."""
    x1, y1 = max(box[0] - x0, 0), max(box[1] - y0, 0)
    x2, y2 = min(box[2] - x0, tile_w), min(box[3] - y0, tile_h)
    w, h = x2 - x1, y2 - y1
    if w < MIN_SIDE or h < MIN_SIDE:
        return None
    area = (box[2] - box[0]) * (box[3] - box[1])
    if w * h < MIN_KEPT_FRACTION * area:
        return None
    return [x1, y1, x2, y2]


def region_tiles(region: Tuple[int, int, int, int], tile: int,
                 stride: int) -> List[Tuple[int, int, int, int]]:
    """``(x0, y0, width, height)`` of the tiles covering ``region``
    (``x1, y1, x2, y2`` in image pixels), none crossing its edges."""
    x1, y1, x2, y2 = region
    tile_w, tile_h = min(tile, x2 - x1), min(tile, y2 - y1)
    return [(x1 + dx, y1 + dy, tile_w, tile_h)
            for dy in tile_starts(y2 - y1, tile, stride)
            for dx in tile_starts(x2 - x1, tile, stride)]


def in_site_regions(width: int,
                    height: int) -> Dict[str, Tuple[int, int, int, int]]:
    """The in-site parts of one image: training left of the line, the
    calibration and test parts above and below the middle right of it."""
    line = round(width * IN_SITE_TRAIN_FRACTION)
    middle = height // 2
    return dict(
        train=(0, 0, line, height),
        calib=(line, 0, width, middle),
        test=(line, middle, width, height))


def new_coco() -> dict:
    return dict(
        images=[],
        annotations=[],
        categories=[dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)])


def add_tile(coco: dict, folder: str, name: str, image: Image.Image,
             boxes: List[List[float]], tile: Tuple[int, int, int, int],
             **image_fields) -> None:
    """Save one tile of ``image`` into ``folder`` and append it and its
    clipped boxes to ``coco``."""
    x0, y0, tile_w, tile_h = tile
    file_name = f'{name}_{x0}_{y0}.png'
    image.crop(
        (x0, y0, x0 + tile_w, y0 + tile_h)).save(osp.join(folder, file_name))
    image_id = len(coco['images']) + 1
    coco['images'].append(
        dict(
            id=image_id,
            file_name=file_name,
            width=tile_w,
            height=tile_h,
            source=name,
            offset=[x0, y0],
            **image_fields))
    for index, box in enumerate(boxes):
        clipped = clip_to_tile(box, x0, y0, tile_w, tile_h)
        if clipped is None:
            continue
        x1, y1, x2, y2 = clipped
        coco['annotations'].append(
            dict(
                id=len(coco['annotations']) + 1,
                image_id=image_id,
                category_id=1,
                bbox=[x1, y1, x2 - x1, y2 - y1],
                area=(x2 - x1) * (y2 - y1),
                iscrowd=0,
                source_box=index))


def part_of(coco: dict, part: str) -> dict:
    """The tiles of ``coco`` in one in-site part, ids unchanged."""
    images = [img for img in coco['images'] if img['part'] == part]
    ids = {img['id'] for img in images}
    return dict(
        images=images,
        annotations=[a for a in coco['annotations'] if a['image_id'] in ids],
        categories=coco['categories'])


def load_image(source: str, name: str):
    """The RGB image and the boxes of one source image."""
    width, height, boxes = read_voc(osp.join(source, name + '.xml'))
    image = Image.open(osp.join(source, name + '.png')).convert('RGB')
    if image.size != (width, height):
        raise ValueError(f'{name}.png is {image.size}, its XML says '
                         f'{(width, height)}')
    return image, boxes


def convert(source: str, out_dir: str, tile: int, stride: int) -> dict:
    """Write both splits (module docstring): ``{train,val}/*.png`` tiles
    and ``annotations/instances_{train,val}.json`` in ``out_dir`` (cross
    site) and in ``out_dir/in_site`` (with ``instances_{calib,test}.json``
    too); return ``{'cross_site': {split: coco}, 'in_site': {...}}``."""
    if not 0 < stride <= tile:
        raise ValueError(f'stride must be in (0, tile={tile}], got {stride}')
    images = {name: load_image(source, name) for name in ALL_IMAGES}
    in_site_dir = osp.join(out_dir, IN_SITE_DIR)
    for folder in (out_dir, in_site_dir):
        for sub in ('train', 'val', 'annotations'):
            os.makedirs(osp.join(folder, sub), exist_ok=True)

    cross_site = {}
    for split, names in (('train', TRAIN_IMAGES), ('val', VAL_IMAGES)):
        cross_site[split] = new_coco()
        for name in names:
            image, boxes = images[name]
            for t in region_tiles((0, 0) + image.size, tile, stride):
                add_tile(cross_site[split], osp.join(out_dir, split), name,
                         image, boxes, t)

    in_site = dict(train=new_coco(), val=new_coco())
    for name, (image, boxes) in images.items():
        for part, region in in_site_regions(*image.size).items():
            split = 'train' if part == 'train' else 'val'
            for t in region_tiles(region, tile, stride):
                add_tile(
                    in_site[split],
                    osp.join(in_site_dir, split),
                    name,
                    image,
                    boxes,
                    t,
                    part=part)
    in_site.update(
        (part, part_of(in_site['val'], part)) for part in ('calib', 'test'))

    for folder, datasets in ((out_dir, cross_site), (in_site_dir, in_site)):
        for split, coco in datasets.items():
            with open(
                    osp.join(folder, 'annotations', f'instances_{split}.json'),
                    'w') as f:
                json.dump(coco, f)
    return dict(cross_site=cross_site, in_site=in_site)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir')
    parser.add_argument('--tile', type=int, default=400)
    parser.add_argument('--stride', type=int, default=256)
    parser.add_argument(
        '--source',
        help='folder of the PNG + VOC XML pairs '
        '(default: deepforest/data of the installed wheel)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    datasets = convert(args.source or deepforest_data_dir(), args.out_dir,
                       args.tile, args.stride)
    for layout, splits in datasets.items():
        for split, coco in splits.items():
            print(f"{layout} {split}: {len(coco['images'])} tiles, "
                  f"{len(coco['annotations'])} boxes")


if __name__ == '__main__':
    main()
