"""The mmengine metric of detection calibration (D-ECE, LaECE, LRP): the
functions of :mod:`..detection_calibration` over the images of a validation
or test loop."""
import numbers
from typing import Dict, Optional, Sequence

from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MessageHub
from mmengine.visualization import Visualizer

from ..detection_calibration import (LAECE_IOU_THR, LAECE_N_BINS,
                                     check_iou_thresholds,
                                     detection_calibration_errors,
                                     detection_reliability_diagrams,
                                     log_detection_calibration_errors,
                                     write_diagrams)
from ..functional import check_n_bins
from ..judged_detections import image_arrays, judge_image_arrays, load_coco


@METRICS.register_module()
class DetectionCalibrationMetric(BaseMetric):
    """D-ECE, adaptive D-ECE (equal-mass bins) and D-MCE at IoU thresholds,
    with a reliability diagram each, and LaECE and LRP at one threshold.

    Use it beside ``CocoMetric``::

        val_evaluator = [
            dict(type='CocoMetric', ann_file=..., metric='bbox'),
            dict(type='DetectionCalibrationMetric', iou_thrs=(0.5, 0.75)),
        ]

    What is counted:

    - **detections**: those with ``score >= score_thr``, then those COCO AP
      judges: per image and class the ``max_dets`` highest scored, matched
      by ``COCOeval`` (area range "all"). Detections on crowd regions
      (COCO's ``dtIgnore``) and past ``max_dets`` are left out. A detection
      in an image without ground truth of its class is a false positive.
    - **D-ECE / adaptive D-ECE / D-MCE** at each of ``iou_thrs``: all
      classes pooled; a true positive scores 1, a false positive 0; ``n_bins``
      equal-width bins ``(e_b, e_{b+1}]`` with ``e = linspace(0, 1,
      n_bins + 1)`` (0 in the first bin), or equal-mass bins for the
      adaptive one. Names ``d_ece_50``, ``adaptive_d_ece_50``,
      ``d_mce_50`` (``_75``, ``_50p4`` for 0.504, ...).
    - **LaECE** at IoU ``laece_iou_thr`` (default 0, the toolkit's
      LaECE_0; Oksuz et al. CVPR 2023 used 0.1): per class, a true positive
      scores its IoU, ``laece_n_bins`` equal-width bins, the mean over
      classes with ground truth and detections. Name ``laece``. Unlike the
      toolkit, a class with LaECE exactly 0 counts (the toolkit drops it).
      At threshold 0, COCOeval (and so the toolkit) lets a detection take
      any still-free object of its class in its image, even at IoU 0: a
      true positive of IoU 0, which scores 0 for LaECE as a false positive
      would, but counts as found for LRP.
    - **LRP** at the same threshold (mean over classes with ground truth:
      ``lrp``, ``lrp_loc``, ``lrp_fp``, ``lrp_fn``), of all kept
      detections; the toolkit also reports oLRP, at each class's best score
      threshold, which is not computed here.

    All values lie in ``[0, 1]``; NaN (with a warning) where nothing is
    counted. Under distributed evaluation each rank stores its images and
    rank 0 runs ``COCOeval`` over all of them.

    The diagrams go to the current mmengine visualizer as
    ``reliability_iou50`` (with the default ``LocalVisBackend`` a PNG in
    ``<work_dir>/<timestamp>/vis_data/vis_image/``; with TensorBoard an
    image summary) and, if ``out_dir`` is given, to
    ``<out_dir>/reliability_iou50.png``.

    Args:
        iou_thrs (float | Sequence[float]): D-ECE's IoU thresholds, each in
            ``(0, 1]``. Defaults to (0.5, 0.75).
        n_bins (int): D-ECE's confidence bins. Defaults to 10.
        laece_iou_thr (float): LaECE's and LRP's IoU threshold, in
            ``[0, 1)``. Defaults to 0.0.
        laece_n_bins (int): LaECE's bins. Defaults to 25 (the toolkit's).
        max_dets (int): Detections judged per image and class. Defaults to
            100 (COCO AP's).
        score_thr (float): Detections below this score are dropped first.
            Defaults to 0 (everything the detector outputs, as AP).
        ann_file (str, optional): COCO annotations to take the ground truth
            from, by ``img_id``. Without it the ground truth is the data
            samples' ``gt_instances`` and ``ignored_instances`` (crowd; the
            test pipeline must load annotations).
        out_dir (str, optional): Also write the diagrams here.
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): Defaults to ``'calibration'``.
        backend_args (dict, optional): For reading ``ann_file``.
    """

    default_prefix: Optional[str] = 'calibration'

    def __init__(self,
                 iou_thrs: Sequence[float] = (0.5, 0.75),
                 n_bins: int = 10,
                 laece_iou_thr: float = LAECE_IOU_THR,
                 laece_n_bins: int = LAECE_N_BINS,
                 max_dets: int = 100,
                 score_thr: float = 0.0,
                 ann_file: Optional[str] = None,
                 out_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.iou_thrs = check_iou_thresholds(iou_thrs)
        self.n_bins = check_n_bins(n_bins)
        self.laece_n_bins = check_n_bins(laece_n_bins)
        if not 0 <= laece_iou_thr < 1:
            raise ValueError('laece_iou_thr must be in [0, 1), got '
                             f'{laece_iou_thr}')
        self.laece_iou_thr = float(laece_iou_thr)
        if isinstance(max_dets, bool) or not isinstance(
                max_dets, numbers.Integral) or max_dets < 1:
            raise ValueError(f'max_dets must be an int >= 1, got {max_dets}')
        self.max_dets = int(max_dets)
        if not 0 <= score_thr < 1:
            raise ValueError(f'score_thr must be in [0, 1), got {score_thr}')
        self.score_thr = score_thr
        self.out_dir = out_dir
        self._coco = None
        if ann_file is not None:
            self._coco = load_coco(ann_file, backend_args)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store each image's kept detections (and its ground truth unless
        it comes from ``ann_file``)."""
        for data_sample in data_samples:
            self.results.append(
                image_arrays(
                    data_sample,
                    self.score_thr,
                    with_ground_truth=self._coco is None))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        judged = judge_image_arrays(results,
                                    self.iou_thrs + (self.laece_iou_thr, ),
                                    (self.dataset_meta or {}).get('classes'),
                                    self._coco, self.max_dets)
        metrics = detection_calibration_errors(judged, self.iou_thrs,
                                               self.n_bins, self.laece_iou_thr,
                                               self.laece_n_bins)
        log_detection_calibration_errors(judged, metrics, self.iou_thrs,
                                         self.laece_iou_thr)
        diagrams = detection_reliability_diagrams(judged, self.iou_thrs,
                                                  self.n_bins)
        if self.out_dir is not None:
            write_diagrams(diagrams, self.out_dir)
        self._add_to_visualizer(diagrams)
        return metrics

    @staticmethod
    def _add_to_visualizer(diagrams: dict) -> None:
        try:
            visualizer = Visualizer.get_current_instance()
        except RuntimeError:  # offline evaluation: no runner, no visualizer
            return
        step = MessageHub.get_current_instance().get_info('iter', 0)
        for name, image in diagrams.items():
            visualizer.add_image(name, image, step=step)
