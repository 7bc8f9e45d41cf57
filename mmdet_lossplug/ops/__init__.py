from .dr_expectation import (HAS_EXT, dr_expectation, dr_expectation_fn,
                             dr_expectation_op)
from .reference import check_dr_arguments, dr_expectation_reference

__all__ = [
    'dr_expectation', 'dr_expectation_op', 'dr_expectation_fn',
    'dr_expectation_reference', 'check_dr_arguments', 'HAS_EXT'
]
