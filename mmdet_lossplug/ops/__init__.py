from .dr_expectation import check_dr_inputs, dr_expectation, dr_expectation_fn
from .reference import dr_expectation_reference

__all__ = [
    'dr_expectation', 'dr_expectation_fn', 'dr_expectation_reference',
    'check_dr_inputs'
]
