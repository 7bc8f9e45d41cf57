"""Watch how confident the classifier is on positives and negatives while it
trains (DR loss paper Fig. 4; PolyLoss Fig. 6b).

Every ``interval`` iterations the hook records what each classification
loss (every module named ``...loss_cls``: RetinaNet's, the RPN's, the RoI
box head's) receives in that iteration's forward pass, through a PyTorch
forward pre-hook, so no head code changes. From the logits and labels it
logs, per loss:

- ``<head>/pos_pt``: mean probability of the true class over positive
  anchors/RoIs;
- ``<head>/neg_pt``: mean of ``1 - s`` over negatives, ``s`` being the
  highest foreground score, i.e. how surely a negative would not be
  reported;

as training scalars (text log and every visualizer backend, through the
message hub), and histograms of the positives' and negatives' scores: as a
figure for every backend (``add_image``) and, on TensorBoard, also as real
histograms.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from torch import Tensor

from ...visualization import figure_to_rgb, new_figure
from .runner_model import unwrapped_model


def positive_negative_scores(
        cls_score: Tensor,
        labels: Tensor,
        label_weights: Optional[Tensor] = None,
        use_sigmoid: bool = True) -> Tuple[Tensor, Tensor]:
    """Scores of positives (true class) and negatives (highest foreground
    class) from what a classification loss receives.

    Args:
        cls_score (Tensor): ``(..., C)`` sigmoid logits or ``(..., C + 1)``
            softmax logits (background last).
        labels (Tensor): ``(...)`` in ``[0, C]``, ``C`` = background.
        label_weights (Tensor, optional): ``(...)`` or ``(..., C)``; samples
            of weight 0 are left out.
        use_sigmoid (bool): Which of the two the logits are.

    Returns:
        tuple[Tensor, Tensor]: 1-D float32 scores of the positives and of
        the negatives.
    """
    logits = cls_score.detach().float().reshape(-1, cls_score.size(-1))
    labels = labels.detach().reshape(-1)
    if logits.size(0) != labels.numel():
        raise ValueError(f'{labels.numel()} labels for {logits.size(0)} '
                         'rows of scores')
    if use_sigmoid:
        probs = logits.sigmoid()
    else:
        probs = logits.softmax(-1)[:, :-1]  # foreground classes only
    num_classes = probs.size(1)
    counted = torch.ones_like(labels, dtype=torch.bool)
    if label_weights is not None:
        counted = label_weights.detach().reshape(labels.numel(),
                                                 -1).amax(1) > 0
    positive = counted & (labels >= 0) & (labels < num_classes)
    negative = counted & (labels == num_classes)
    pos_scores = probs[positive].gather(1, labels[positive, None]).squeeze(1)
    neg_scores = probs[negative].amax(1) if num_classes else probs.new_empty(0)
    return pos_scores, neg_scores


def plot_score_histograms(pos_scores: np.ndarray,
                          neg_scores: np.ndarray,
                          bins: int = 50,
                          title: str = '') -> np.ndarray:
    """Both histograms on a log count axis; ``(H, W, 3)`` uint8 RGB."""
    ax = new_figure(5, 3.5).subplots()
    edges = np.linspace(0, 1, bins + 1)
    for scores, name, color in ((neg_scores, 'negatives', 'tab:red'),
                                (pos_scores, 'positives', 'tab:blue')):
        if len(scores):
            ax.hist(
                scores,
                bins=edges,
                alpha=0.6,
                color=color,
                label=f'{name} ({len(scores)})')
    ax.set_yscale('log')
    ax.set_xlim(0, 1)
    ax.set_xlabel('score')
    ax.set_ylabel('count')
    ax.legend()
    if title:
        ax.set_title(title)
    return figure_to_rgb(ax.figure)


@HOOKS.register_module()
class ScoreDistributionHook(Hook):
    """Log the positives' and negatives' score distributions every
    ``interval`` training iterations.

    Args:
        interval (int): Iterations between records. Defaults to 500.
        loss_names (Sequence[str], optional): Module paths of the losses to
            watch, e.g. ``['roi_head.bbox_head.loss_cls']``. Defaults to
            every module whose name ends with ``loss_cls``.
        bins (int): Histogram bins on ``[0, 1]``. Defaults to 50.
        histograms (bool): Also send the histograms (figures, TensorBoard
            histograms); the scalars are always logged. Defaults to True.
    """

    priority = 'NORMAL'

    def __init__(self,
                 interval: int = 500,
                 loss_names: Optional[Sequence[str]] = None,
                 bins: int = 50,
                 histograms: bool = True) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval = interval
        self.loss_names = None if loss_names is None else list(loss_names)
        self.bins = bins
        self.histograms = histograms
        self._recording = False
        self._records: Dict[str, List[Tuple[Tensor, Tensor]]] = {}
        self._handles = []

    def before_train(self, runner) -> None:
        model = unwrapped_model(runner)
        modules = dict(model.named_modules())
        names = self.loss_names or [
            n for n in modules if n.split('.')[-1] == 'loss_cls'
        ]
        missing = [n for n in names if n not in modules]
        if missing or not names:
            raise ValueError(f'ScoreDistributionHook: no classification loss '
                             f'{missing or "named *loss_cls"} in the model')
        for name in names:
            self._handles.append(modules[name].register_forward_pre_hook(
                self._recorder(name, modules[name])))

    def _recorder(self, name: str, loss: torch.nn.Module):
        use_sigmoid = getattr(loss, 'use_sigmoid', True)
        head = name.rsplit('.loss_cls', 1)[0]

        def record(module, args):
            if not self._recording:
                return
            if len(args) < 2:
                raise ValueError(f'ScoreDistributionHook: {name} was called '
                                 'without positional (cls_score, labels)')
            weights = args[2] if len(args) > 2 else None
            self._records.setdefault(head, []).append(
                positive_negative_scores(args[0], args[1], weights,
                                         use_sigmoid))

        return record

    def before_train_iter(self, runner, batch_idx: int, data_batch=None):
        self._recording = self.every_n_train_iters(runner, self.interval)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if not self._recording:
            return
        self._recording = False
        step = runner.iter + 1
        for head, records in self._records.items():
            pos = torch.cat([p for p, _ in records]).cpu().numpy()
            neg = torch.cat([n for _, n in records]).cpu().numpy()
            if len(pos):
                runner.message_hub.update_scalar(f'train/{head}/pos_pt',
                                                 float(pos.mean()))
            if len(neg):
                runner.message_hub.update_scalar(f'train/{head}/neg_pt',
                                                 float(1 - neg.mean()))
            if self.histograms:
                self._send_histograms(runner.visualizer, head, pos, neg, step)
        self._records.clear()

    def _send_histograms(self, visualizer, head: str, pos: np.ndarray,
                         neg: np.ndarray, step: int) -> None:
        visualizer.add_image(
            f'{head}_scores',
            plot_score_histograms(
                pos, neg, self.bins, title=f'{head} scores, iter {step}'),
            step=step)
        tensorboard = visualizer.get_backend('TensorboardVisBackend')
        if tensorboard is None:
            return
        for part, scores in (('positive', pos), ('negative', neg)):
            if len(scores):
                tensorboard.experiment.add_histogram(
                    f'{head}/{part}_scores',
                    scores,
                    step,
                    bins=np.linspace(0, 1, self.bins + 1))

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
