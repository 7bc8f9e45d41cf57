from .calibration import adaptive_ece, brier, classwise_ece, ece, mce, nll

__all__ = ['ece', 'adaptive_ece', 'mce', 'classwise_ece', 'nll', 'brier']
