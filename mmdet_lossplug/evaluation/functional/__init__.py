# Pure functions, as mmdet.evaluation.functional: arrays in, numbers out.
from .calibration_errors import (adaptive_ece, brier, check_n_bins,
                                 check_probabilities, classwise_ece, ece,
                                 equal_width_bin_index, mce, nll,
                                 reliability_bins, to_numpy)
from .localisation_aware import laece, lrp

__all__ = [
    'ece', 'adaptive_ece', 'mce', 'classwise_ece', 'nll', 'brier',
    'reliability_bins', 'equal_width_bin_index', 'check_n_bins',
    'check_probabilities', 'to_numpy', 'laece', 'lrp'
]
