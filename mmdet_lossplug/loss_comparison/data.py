"""What a loss comparison trains and scores on: a user's COCO-format
dataset (:func:`prepare_coco`), or the default, NEON tree-crown tiles
(:func:`prepare_tiles`).

A user's dataset: train and validation annotation files and image
folders, and optionally a separate calibration part. The classes are the
training file's categories, in its order. After the checks of
:func:`read_part` (each failure names the file and what is wrong, before
anything trains), every part is rewritten into ``<root>/annotations/
instances_{train,val,calib,test}.json`` with one category list (the
training file's ids) and absolute image paths. ``test`` is where every
metric is scored and ``calib`` where the temperature is fitted: the given
calibration part and the validation set, or, without a calibration part,
the validation images split in two by image: shuffled by
``numpy.random.default_rng(split_seed)``, the first ``len // 2`` calibrate
and the rest test. ``val`` holds both parts (what the detector is
validated on, once, at the end of training).

NEON's tiles: two splits of the same four photographs (the converter's
docstring says how the lines are drawn): ``in_site`` trains on the left
70 % of every image and validates on the right 30 %, whose top half
(``calib``) fits post-hoc calibrators and bottom half (``test``) scores
everything; ``cross_site`` trains on one YELL image and validates on the
three others. The converter and the configs ship with the package
(:func:`shipped_file`), as MMDetection ships its configs for ``mim``.
"""
import json
import os
import os.path as osp
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Optional, Tuple

import numpy as np

# 400 px tiles every 256 px: neighbours overlap by 144 px, more than the
# largest crown (107 px), so every crown lies whole in some tile.
TILE_SIZE = 400
TILE_STRIDE = 256
CLASSES = ('Tree', )

SPLITS = ('in_site', 'cross_site')
# The parts of the validation images: fit a calibrator on the first, score
# on the second.
CALIBRATION_PART, TEST_PART = 'calib', 'test'
PARTS = ('train', 'val', CALIBRATION_PART, TEST_PART)


def shipped_file(*path: str) -> str:
    """A file the package ships beside its code, as MMDetection's
    ``.mim``: ``configs/...`` and ``tools/...`` of the source tree."""
    return str(resources.files('mmdet_lossplug').joinpath('.mim', *path))


NEON_CONVERTER = shipped_file('tools', 'dataset_converters',
                              'neon_trees_to_coco.py')


def split_root(data_root: str, split: str) -> str:
    """Where the tiles of ``split`` are (what the configs' data_root reads
    from ``NEON_TREES_ROOT`` and ``NEON_TREES_SPLIT``)."""
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    return osp.join(data_root, 'in_site') if split == 'in_site' else data_root


def annotation_file(data_root: str, part: str) -> str:
    """The COCO annotations of ``part`` ('train', 'val', and where there
    are parts 'calib' and 'test') of the dataset in ``data_root``."""
    return osp.join(data_root, 'annotations', f'instances_{part}.json')


def prepare_tiles(data_root: str) -> None:
    """Tile deepforest's NEON images into ``data_root`` (both splits)
    unless they are there already; the converter's output is shown only if
    it fails."""
    if osp.isfile(
            annotation_file(split_root(data_root, 'in_site'), TEST_PART)):
        return
    proc = subprocess.run([
        sys.executable, NEON_CONVERTER, data_root, '--tile',
        str(TILE_SIZE), '--stride',
        str(TILE_STRIDE)
    ],
                          capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f'{NEON_CONVERTER} failed:\n{proc.stdout}{proc.stderr}')


@dataclass(frozen=True)
class CocoData:
    """A prepared COCO-format dataset (:func:`prepare_coco`).

    Attributes:
        root (str): Where its ``annotations/instances_<part>.json`` are.
        classes (tuple[str]): Its classes, in label order.
    """
    root: str
    classes: Tuple[str, ...]

    def apply(self, cfg) -> None:
        """Point ``cfg``'s training and validation sets and its evaluators
        at this dataset, and its heads at its number of classes."""
        for loader, part in ((cfg.train_dataloader, 'train'),
                             (cfg.val_dataloader, 'val')):
            loader.dataset.update(
                data_root=self.root,
                ann_file=annotation_file(self.root, part),
                # the file names are absolute
                data_prefix=dict(img=''),
                metainfo=dict(classes=self.classes))
        evaluators = cfg.val_evaluator
        for metric in evaluators if isinstance(evaluators,
                                               list) else [evaluators]:
            if 'ann_file' in metric:
                metric.ann_file = annotation_file(self.root, 'val')
        model = cfg.model
        for head in (model.get('bbox_head'), model.get('roi_head',
                                                       {}).get('bbox_head')):
            if isinstance(head, dict) and 'num_classes' in head:
                head.num_classes = len(self.classes)


def read_part(ann_file: str, img_dir: str) -> dict:
    """A COCO annotation file whose images are in ``img_dir``; a
    ``ValueError`` naming the file where it cannot be used: unreadable,
    no images, no boxes, a box on an image or of a category the file does
    not list, or images missing from ``img_dir``."""
    if not osp.isfile(ann_file):
        raise ValueError(f'{ann_file}: no such annotation file')
    if not osp.isdir(img_dir):
        raise ValueError(f'{img_dir}: no such image folder (the images of '
                         f'{ann_file})')
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except (OSError, ValueError) as error:
        raise ValueError(f'{ann_file}: not a JSON file: {error}') from error
    if not isinstance(coco, dict) or not all(
            isinstance(coco.get(key), list)
            for key in ('images', 'annotations', 'categories')):
        raise ValueError(f'{ann_file}: not COCO: needs the lists images, '
                         'annotations and categories')
    if not coco['images']:
        raise ValueError(f'{ann_file}: no images')
    boxes = [a for a in coco['annotations'] if not a.get('iscrowd', 0)]
    if not boxes:
        raise ValueError(f'{ann_file}: no boxes (no annotation that is '
                         'not a crowd region)')
    image_ids = {image['id'] for image in coco['images']}
    category_ids = {c['id'] for c in coco['categories']}
    for ann in coco['annotations']:
        if ann['image_id'] not in image_ids:
            raise ValueError(f'{ann_file}: annotation {ann["id"]} is on '
                             f'image {ann["image_id"]}, which is not in '
                             'images')
        if ann['category_id'] not in category_ids:
            raise ValueError(f'{ann_file}: annotation {ann["id"]} has '
                             f'category {ann["category_id"]}, which is not '
                             'in categories')
    missing = [
        image['file_name'] for image in coco['images']
        if not osp.isfile(osp.join(img_dir, image['file_name']))
    ]
    if missing:
        raise ValueError(f'{ann_file}: {len(missing)} of its '
                         f'{len(coco["images"])} images are not in '
                         f'{img_dir}, e.g. {missing[0]}')
    return coco


def _box_classes(coco: dict) -> set:
    names = {c['id']: c['name'] for c in coco['categories']}
    return {names[a['category_id']] for a in coco['annotations']}


def _rewritten(coco: dict, img_dir: str, categories: list,
               ann_file: str) -> dict:
    """``coco`` with ``categories`` (by name), absolute file names."""
    by_name = {c['name']: c['id'] for c in categories}
    old = {c['id']: c['name'] for c in coco['categories']}
    absent = sorted(set(old.values()) - set(by_name))
    if absent:
        raise ValueError(f'{ann_file}: categories {absent} are not in the '
                         'training annotations')
    images = [
        dict(
            image,
            file_name=osp.abspath(osp.join(img_dir, image['file_name'])))
        for image in coco['images']
    ]
    annotations = [
        dict(ann, category_id=by_name[old[ann['category_id']]])
        for ann in coco['annotations']
    ]
    return dict(images=images, annotations=annotations, categories=categories)


def _renumbered(coco: dict, image_offset: int, ann_offset: int) -> dict:
    return dict(
        coco,
        images=[dict(i, id=i['id'] + image_offset) for i in coco['images']],
        annotations=[
            dict(
                a,
                id=a['id'] + ann_offset,
                image_id=a['image_id'] + image_offset)
            for a in coco['annotations']
        ])


def _subset(coco: dict, image_ids: set) -> dict:
    return dict(
        coco,
        images=[i for i in coco['images'] if i['id'] in image_ids],
        annotations=[
            a for a in coco['annotations'] if a['image_id'] in image_ids
        ])


def _write(coco: dict, path: str) -> None:
    """Write ``path`` whole or not at all, and only if it changes: runs
    started side by side prepare the same files."""
    text = json.dumps(coco)
    if osp.isfile(path):
        with open(path) as f:
            if f.read() == text:
                return
    os.makedirs(osp.dirname(path), exist_ok=True)
    partial = f'{path}.{os.getpid()}.partial'
    with open(partial, 'w') as f:
        f.write(text)
    os.replace(partial, path)


def prepare_coco(root: str,
                 train: Tuple[str, str],
                 val: Tuple[str, str],
                 calib: Optional[Tuple[str, str]] = None,
                 split_seed: int = 0) -> CocoData:
    """Check a user's COCO dataset and write its parts into ``root``.

    Args:
        root (str): Where the prepared annotation files go.
        train, val (tuple[str, str]): Annotation file and image folder of
            the training and the validation set.
        calib (tuple[str, str], optional): Those of a separate calibration
            part; without it the validation images are split in two.
        split_seed (int): The seed of that split. Defaults to 0.

    Returns:
        CocoData: The prepared dataset.

    Raises:
        ValueError: Naming the file and what is wrong with it (see
        :func:`read_part`), a validation class the training set has no box
        of, or too few validation images to split.
    """
    train_coco = read_part(*train)
    categories = [
        dict(id=c['id'], name=c['name']) for c in train_coco['categories']
    ]
    parts = {'train': _rewritten(train_coco, train[1], categories, train[0])}
    scored = [(val, TEST_PART)]
    if calib is not None:
        scored.insert(0, (calib, CALIBRATION_PART))
    trained = _box_classes(train_coco)
    for (ann_file, img_dir), part in scored:
        coco = read_part(ann_file, img_dir)
        lacking = sorted(_box_classes(coco) - trained)
        if lacking:
            raise ValueError(f'{ann_file}: classes {lacking} have boxes here '
                             f'but none in the training set {train[0]}')
        parts[part] = _rewritten(coco, img_dir, categories, ann_file)
    if calib is None:
        images = sorted(i['id'] for i in parts[TEST_PART]['images'])
        if len(images) < 2:
            raise ValueError(f'{val[0]}: one image cannot be split into a '
                             'calibration and a test part: give --calib-ann')
        order = np.random.default_rng(split_seed).permutation(images)
        half = len(images) // 2
        parts['val'] = parts[TEST_PART]
        parts[CALIBRATION_PART] = _subset(parts['val'],
                                          set(order[:half].tolist()))
        parts[TEST_PART] = _subset(parts['val'], set(order[half:].tolist()))
    else:
        # One validation file of both parts, ids apart.
        calib_coco = parts[CALIBRATION_PART]
        image_offset = max(i['id'] for i in calib_coco['images']) + 1
        ann_offset = max(a['id'] for a in calib_coco['annotations']) + 1
        parts[TEST_PART] = _renumbered(parts[TEST_PART], image_offset,
                                       ann_offset)
        parts['val'] = dict(
            parts[TEST_PART],
            images=calib_coco['images'] + parts[TEST_PART]['images'],
            annotations=calib_coco['annotations'] +
            parts[TEST_PART]['annotations'])
    for part in PARTS:
        _write(parts[part], annotation_file(root, part))
    return CocoData(
        root=osp.abspath(root), classes=tuple(c['name'] for c in categories))
