"""The classifier initialisation DR loss trains from.

MMDetection's sigmoid dense heads set the classifier's bias for a prior
probability of 0.01: a per-anchor loss summed over ~10^5 anchors per image
(focal loss) would otherwise be swamped by the easy negatives in the first
iterations. DR loss ranks two expectations per image, whatever the number of
negatives, and the DR paper (Sec. 4.2) initialises the sigmoid at 0.5, the
decision threshold of binary classification without prior knowledge.
"""

DR_PRIOR = 0.5


def classifier_prior_init_cfg(cls_layer: str, prior: float = DR_PRIOR) -> dict:
    """The stock heads' ``init_cfg`` (every conv ``Normal(std=0.01)``) with
    the bias of the classifier conv ``cls_layer`` set for ``prior``."""
    return dict(
        type='Normal',
        layer='Conv2d',
        std=0.01,
        override=dict(
            type='Normal', name=cls_layer, std=0.01, bias_prob=prior))
