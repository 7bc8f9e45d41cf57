"""Generate a small detection dataset of simple shapes, reproducible by seed.

Each image holds 1-4 filled shapes (rectangle, ellipse, triangle) of random
colour on a noisy background, with boxes and polygon masks. Written as COCO
JSON (``annotations/instances_{train,val}.json`` + ``{train,val}/*.png``) and
as PASCAL VOC XML (``VOCdevkit/VOC2007/{JPEGImages,Annotations,ImageSets}``
with ``trainval`` = train and ``test`` = val), so MMDetection's
``CocoDataset`` and ``VOCDataset`` load it unchanged.

    python tools/misc/generate_shapes_dataset.py OUT_DIR [--num-train 64]
        [--num-val 16] [--size 128] [--seed 0] [--formats coco voc]
"""
import argparse
import json
import math
import os
import os.path as osp
from typing import Dict, List, Tuple
from xml.etree import ElementTree as ET

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ('rectangle', 'ellipse', 'triangle')
Polygon = List[Tuple[float, float]]


def _shape_polygon(rng: np.random.Generator, cls: str, size: int) -> Polygon:
    """A polygon of class ``cls`` inside a ``size`` x ``size`` image."""
    w, h = rng.uniform(0.15, 0.45, size=2) * size
    cx = rng.uniform(w / 2, size - w / 2)
    cy = rng.uniform(h / 2, size - h / 2)
    if cls == 'rectangle':
        return [(cx - w / 2, cy - h / 2), (cx + w / 2, cy - h / 2),
                (cx + w / 2, cy + h / 2), (cx - w / 2, cy + h / 2)]
    if cls == 'ellipse':
        angles = np.linspace(0, 2 * math.pi, 32, endpoint=False)
        return [(cx + w / 2 * math.cos(a), cy + h / 2 * math.sin(a))
                for a in angles]
    return [(cx, cy - h / 2), (cx + w / 2, cy + h / 2),
            (cx - w / 2, cy + h / 2)]


def _polygon_area(poly: Polygon) -> float:
    xs, ys = np.array(poly).T
    return float(0.5 *
                 abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))


def _render_image(rng: np.random.Generator,
                  size: int) -> Tuple[Image.Image, List[Dict]]:
    """One image and its objects (class index, box xyxy, polygon)."""
    background = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    objects = []
    for _ in range(int(rng.integers(1, 5))):
        label = int(rng.integers(len(CLASSES)))
        poly = _shape_polygon(rng, CLASSES[label], size)
        colour = tuple(int(c) for c in rng.integers(100, 256, size=3))
        draw.polygon(poly, fill=colour)
        xs, ys = np.array(poly).T
        box = [
            float(np.clip(xs.min(), 0, size)),
            float(np.clip(ys.min(), 0, size)),
            float(np.clip(xs.max(), 0, size)),
            float(np.clip(ys.max(), 0, size))
        ]
        objects.append(dict(label=label, box=box, polygon=poly))
    return image, objects


def _coco_split(samples, split: str, out_dir: str) -> str:
    img_dir = osp.join(out_dir, split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for img_id, (name, image, objects) in enumerate(samples, start=1):
        image.save(osp.join(img_dir, name + '.png'))
        images.append(
            dict(
                id=img_id,
                file_name=name + '.png',
                width=image.width,
                height=image.height))
        for obj in objects:
            x1, y1, x2, y2 = obj['box']
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=img_id,
                    category_id=obj['label'] + 1,
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    area=_polygon_area(obj['polygon']),
                    segmentation=[[c for p in obj['polygon'] for c in p]],
                    iscrowd=0))
    categories = [
        dict(id=i + 1, name=name, supercategory='shape')
        for i, name in enumerate(CLASSES)
    ]
    ann_file = osp.join(out_dir, 'annotations', f'instances_{split}.json')
    os.makedirs(osp.dirname(ann_file), exist_ok=True)
    with open(ann_file, 'w') as f:
        json.dump(
            dict(
                images=images, annotations=annotations, categories=categories),
            f)
    return ann_file


def _voc_split(samples, split: str, out_dir: str) -> None:
    root = osp.join(out_dir, 'VOCdevkit', 'VOC2007')
    for sub in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    for name, image, objects in samples:
        image.save(osp.join(root, 'JPEGImages', name + '.jpg'), quality=95)
        ann = ET.Element('annotation')
        ET.SubElement(ann, 'filename').text = name + '.jpg'
        size = ET.SubElement(ann, 'size')
        for key, value in (('width', image.width), ('height', image.height),
                           ('depth', 3)):
            ET.SubElement(size, key).text = str(value)
        for obj in objects:
            node = ET.SubElement(ann, 'object')
            ET.SubElement(node, 'name').text = CLASSES[obj['label']]
            ET.SubElement(node, 'difficult').text = '0'
            box = ET.SubElement(node, 'bndbox')
            # VOC boxes are 1-based pixel indices; VOCDataset subtracts 1.
            for key, value in zip(('xmin', 'ymin', 'xmax', 'ymax'),
                                  obj['box']):
                ET.SubElement(box, key).text = str(int(round(value)) + 1)
        ET.ElementTree(ann).write(osp.join(root, 'Annotations', name + '.xml'))
    with open(osp.join(root, 'ImageSets', 'Main', split + '.txt'), 'w') as f:
        f.write(''.join(name + '\n' for name, _, _ in samples))


def generate(out_dir: str,
             num_train: int = 64,
             num_val: int = 16,
             size: int = 128,
             seed: int = 0,
             formats=('coco', 'voc')) -> Dict[str, str]:
    """Write the dataset under ``out_dir``; returns the paths written."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, count in (('train', num_train), ('val', num_val)):
        splits[split] = [(f'{split}_{i:05d}', ) + _render_image(rng, size)
                         for i in range(count)]
    paths = {}
    if 'coco' in formats:
        for split, samples in splits.items():
            paths[f'coco_{split}'] = _coco_split(samples, split, out_dir)
    if 'voc' in formats:
        _voc_split(splits['train'], 'trainval', out_dir)
        _voc_split(splits['val'], 'test', out_dir)
        paths['voc_root'] = osp.join(out_dir, 'VOCdevkit')
    return paths


def _int_at_least(minimum: int):
    """An argparse type: an int ``>= minimum``, else a usage error (exit
    status 2) that names the argument."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'not an integer: {text!r}')
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f'must be an integer >= {minimum}, got {value}')
        return value

    return parse


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir')
    parser.add_argument('--num-train', type=_int_at_least(1), default=64)
    parser.add_argument('--num-val', type=_int_at_least(1), default=16)
    # The smallest shape is 0.15 * size wide: at 16 px still 2 px, which
    # MMDetection keeps (it drops boxes under 1 px).
    parser.add_argument('--size', type=_int_at_least(16), default=128)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--formats',
        nargs='+',
        choices=['coco', 'voc'],
        default=['coco', 'voc'])
    args = parser.parse_args(argv)
    for key, path in generate(args.out_dir, args.num_train, args.num_val,
                              args.size, args.seed, args.formats).items():
        print(f'{key}: {path}')


if __name__ == '__main__':
    main()
