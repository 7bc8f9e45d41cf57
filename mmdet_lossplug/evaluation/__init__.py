# As mmdet.evaluation: functional code, and the metrics registered with
# mmdet's METRICS that compose it.
from .functional import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
