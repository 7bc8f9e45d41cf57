from ._registration import HAS_EXT
from .dr_expectation import dr_expectation
from .reference import dr_expectation_reference

__all__ = ['dr_expectation', 'dr_expectation_reference', 'HAS_EXT']
