"""Tile the NEON tree-crown images that ship with ``deepforest`` (MIT code,
CC0 imagery; Pascal VOC XML boxes) into a COCO dataset, split by image so
that no validation pixel is seen in training.

    pip install --no-deps deepforest==2.1.0   # only its data files are used
    python tools/dataset_converters/neon_trees_to_coco.py data/neon_trees
        [--tile 400] [--stride 256] [--source DIR]

Train: the large YELL crop. Val: the other YELL crop and the single OSBS and
SOAP images (other sites). One class, 'Tree': SOAP's 'Alive' and 'Dead'
labels are merged into it.

Tiles are ``tile`` px squares every ``stride`` px, the last row and column
flush with the image edge, so neighbours overlap by at least
``tile - stride`` px: every box no larger than that lies whole in some tile
(crowns are at most 107 px; the default overlap is 144). A box cut by a
tile edge is clipped to it and kept only if at least half its area and at
least 4 px per side remain; smaller pieces are slivers a detector cannot be
asked to find (the tile holding the whole box keeps it).
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import xml.etree.ElementTree as ET
from typing import List, Tuple

from PIL import Image

TRAIN_IMAGES = ('2019_YELL_2_528000_4978000_image_crop2', )
VAL_IMAGES = ('2019_YELL_2_541000_4977000_image_crop', 'OSBS_029', 'SOAP_061')
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


def convert(source: str, out_dir: str, tile: int, stride: int) -> dict:
    """Write ``{train,val}/*.png`` tiles and
    ``annotations/instances_{train,val}.json``; return the COCO dicts."""
    if not 0 < stride <= tile:
        raise ValueError(f'stride must be in (0, tile={tile}], got {stride}')
    datasets = {}
    for split, names in (('train', TRAIN_IMAGES), ('val', VAL_IMAGES)):
        os.makedirs(osp.join(out_dir, split), exist_ok=True)
        coco = dict(
            images=[],
            annotations=[],
            categories=[dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)])
        for name in names:
            width, height, boxes = read_voc(osp.join(source, name + '.xml'))
            image = Image.open(osp.join(source, name + '.png')).convert('RGB')
            if image.size != (width, height):
                raise ValueError(f'{name}.png is {image.size}, its XML says '
                                 f'{(width, height)}')
            for y0 in tile_starts(height, tile, stride):
                for x0 in tile_starts(width, tile, stride):
                    tile_w, tile_h = min(tile, width), min(tile, height)
                    file_name = f'{name}_{x0}_{y0}.png'
                    image.crop((x0, y0, x0 + tile_w, y0 + tile_h)).save(
                        osp.join(out_dir, split, file_name))
                    image_id = len(coco['images']) + 1
                    coco['images'].append(
                        dict(
                            id=image_id,
                            file_name=file_name,
                            width=tile_w,
                            height=tile_h,
                            source=name,
                            offset=[x0, y0]))
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
        os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
        with open(
                osp.join(out_dir, 'annotations', f'instances_{split}.json'),
                'w') as f:
            json.dump(coco, f)
        datasets[split] = coco
    return datasets


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
    for split, coco in datasets.items():
        print(f"{split}: {len(coco['images'])} tiles, "
              f"{len(coco['annotations'])} boxes")


if __name__ == '__main__':
    main()
