"""Pictures of a loss comparison's run, from the validation predictions
it dumped (``WORK_DIR/<loss>/seed<S>/val.pkl``):

- ``detections.png``: one validation tile, its ground truth beside each
  loss's detections above 0.3;
- ``reliability.png``: precision against confidence of the detections
  judged at IoU 0.5 (COCOeval's matching, as D-ECE), per loss;
- ``score_histograms.png``: confidences of true and false positives.

Drawn with Matplotlib's Agg backend: no display is needed.
"""
import json
import os
import os.path as osp

import matplotlib.pyplot as plt
import mmengine
import numpy as np
from matplotlib.patches import Rectangle
from PIL import Image

from ..evaluation import ece, judge_predictions, load_coco, reliability_bins
from ..visualization import draw_reliability
from .data import TEST_PART, annotation_file

SHOWN_SCORE = 0.3
N_BINS = 10
IOU_THR = 0.5


def tp_fp_scores(predictions, coco_gt, classes):
    """Confidences and true-positive flags of the detections at IoU 0.5
    (judged as D-ECE judges them)."""
    return judge_predictions(predictions, (IOU_THR, ), classes,
                             coco_gt).confidences_and_hits(IOU_THR)


def densest_tile(coco: dict) -> dict:
    """The validation tile with the most boxes (the picture to look at)."""
    counts = {}
    for ann in coco['annotations']:
        counts[ann['image_id']] = counts.get(ann['image_id'], 0) + 1
    best = max(counts, key=counts.get)
    return next(img for img in coco['images'] if img['id'] == best)


def draw_boxes(ax, boxes, color, title):
    for x1, y1, x2, y2 in boxes:
        ax.add_patch(
            Rectangle((x1, y1),
                      x2 - x1,
                      y2 - y1,
                      fill=False,
                      edgecolor=color,
                      linewidth=1))
    ax.set_title(title, fontsize=9)
    ax.axis('off')


def loss_panels(judged: dict):
    """A row of panels sharing the y axis, one per loss, and the figure."""
    fig, axes = plt.subplots(
        1, len(judged), figsize=(2.8 * len(judged), 3), sharey=True)
    return fig, np.atleast_1d(axes)


def save(fig, out_file):
    fig.tight_layout()
    fig.savefig(out_file, dpi=110)
    plt.close(fig)


def plot_detections(tile, image, gt_boxes, predictions, out_file):
    fig, axes = plt.subplots(
        1, len(predictions) + 1, figsize=(3 * (len(predictions) + 1), 3.3))
    axes[0].imshow(image)
    draw_boxes(axes[0], gt_boxes, 'yellow', f'ground truth ({len(gt_boxes)})')
    for ax, (name, preds) in zip(axes[1:], predictions.items()):
        pred = next(p for p in preds if p['img_id'] == tile['id'])
        inst = pred['pred_instances']
        keep = np.asarray(inst['scores']) >= SHOWN_SCORE
        ax.imshow(image)
        draw_boxes(ax,
                   np.asarray(inst['bboxes'])[keep], 'cyan',
                   f'{name} ({keep.sum()} >= {SHOWN_SCORE})')
    fig.suptitle(tile['file_name'], fontsize=9)
    save(fig, out_file)


def plot_reliability(judged: dict, out_file):
    """Per loss, the reliability bars the calibration metric draws, binned
    as D-ECE bins them."""
    fig, axes = loss_panels(judged)
    for ax, (name, (conf, hits)) in zip(axes, judged.items()):
        draw_reliability(ax, *reliability_bins(conf, hits, N_BINS),
                         ece(conf, hits, N_BINS),
                         f'precision at IoU {IOU_THR}', 'D-ECE')
        ax.set_title(f'{name} ({len(conf)} dets)', fontsize=9)
    save(fig, out_file)


def plot_histograms(judged: dict, out_file):
    fig, axes = loss_panels(judged)
    edges = np.linspace(0, 1, 21)
    for ax, (name, (conf, hits)) in zip(axes, judged.items()):
        ax.hist([conf[hits == 1], conf[hits == 0]],
                bins=edges,
                stacked=True,
                color=['tab:green', 'tab:red'],
                label=['true positive', 'false positive'])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel('confidence')
    axes[0].set_ylabel('detections at IoU 0.5')
    axes[0].legend(fontsize=7)
    save(fig, out_file)


def plot_all(work_dir: str, data_root: str, losses, seed: int, out_dir=None):
    """Write the three pictures of ``losses`` at ``seed`` to ``out_dir``
    (default ``work_dir/plots``); return their paths. They show the
    validation images of the dataset in ``data_root`` (its
    ``annotations/instances_<part>.json``; images under ``val/``, or at
    their absolute file names): its test part where it has one (the images
    the tables score)."""
    plt.switch_backend('Agg')
    out_dir = out_dir or osp.join(work_dir, 'plots')
    os.makedirs(out_dir, exist_ok=True)
    ann_file = annotation_file(data_root, TEST_PART)
    if not osp.isfile(ann_file):
        ann_file = annotation_file(data_root, 'val')
    with open(ann_file) as f:
        coco = json.load(f)
    shown = {image['id'] for image in coco['images']}
    predictions = {
        name: [
            p for p in mmengine.load(
                osp.join(work_dir, name, f'seed{seed}', 'val.pkl'))
            if p['img_id'] in shown
        ]
        for name in losses
    }
    tile = densest_tile(coco)
    image = Image.open(osp.join(data_root, 'val', tile['file_name']))
    gt_boxes = [[x, y, x + w, y + h]
                for x, y, w, h in (a['bbox'] for a in coco['annotations']
                                   if a['image_id'] == tile['id'])]
    paths = [
        osp.join(out_dir, name)
        for name in ('detections.png', 'reliability.png',
                     'score_histograms.png')
    ]
    plot_detections(tile, image, gt_boxes, predictions, paths[0])
    coco_gt = load_coco(ann_file)
    judged = {
        name: tp_fp_scores(preds, coco_gt,
                           [c['name'] for c in coco['categories']])
        for name, preds in predictions.items()
    }
    plot_reliability(judged, paths[1])
    plot_histograms(judged, paths[2])
    return paths
