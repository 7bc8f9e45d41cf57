from .dr_expectation import (HAS_EXT, check_dr_inputs, dr_expectation,
                             dr_expectation_fn, dr_expectation_op)
from .reference import dr_expectation_reference

__all__ = [
    'dr_expectation', 'dr_expectation_op', 'dr_expectation_fn',
    'dr_expectation_reference', 'check_dr_inputs', 'HAS_EXT'
]
