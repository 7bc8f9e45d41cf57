from .focal_gamma_schedule_hook import (PRESETS, FocalGammaScheduleHook,
                                        set_focal_gamma)

__all__ = ['FocalGammaScheduleHook', 'set_focal_gamma', 'PRESETS']
