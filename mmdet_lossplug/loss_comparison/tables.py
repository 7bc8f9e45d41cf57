"""The comparison's tables: mean ± sample standard deviation over seeds of
each row, and each row's difference from the baseline with Welch's p."""
from typing import Dict, List

import numpy as np
from scipy.stats import ttest_ind

# (metric key, column title) of the validation metrics.
COLUMNS = (('coco/bbox_mAP', 'AP'), ('coco/bbox_mAP_50', 'AP50'),
           ('calibration/d_ece_50', 'D-ECE@0.5'), ('calibration/laece',
                                                   'LaECE'))
# The same model tested on the tiles it was trained on.
FIT_PREFIX = 'train_tiles/'
FIT_COLUMNS = ((FIT_PREFIX + 'coco/bbox_mAP_50', 'train-tile AP50'), )
TABLE_COLUMNS = COLUMNS + FIT_COLUMNS

# One (loss, seed) run: TABLE_COLUMNS' keys and 'minutes'.
Results = Dict[str, List[dict]]


def reported(metrics: dict, key: str) -> float:
    """``metrics[key]``; 0 for a COCO AP that is missing because mmdet's
    CocoMetric reports nothing for a model without a detection above the
    test threshold (COCOeval's AP is 0 then)."""
    if key in metrics:
        return metrics[key]
    if key.startswith('coco/'):
        return 0.0
    raise KeyError(f'the evaluation did not report {key}')


def mean_std(values) -> str:
    values = np.asarray(values, dtype=np.float64)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f'{values.mean():.1f} ± {std:.1f}'


def _header(cells) -> List[str]:
    return ['| ' + ' | '.join(cells) + ' |', '|' + '---|' * len(cells)]


def format_table(results: Results) -> str:
    """Mean ± sample standard deviation over seeds of each row; metrics in
    percent, training time in minutes."""
    lines = _header(['loss', 'seeds'] +
                    [f'{t} (%)' for _, t in TABLE_COLUMNS] + ['train min'])
    for name, seeds in results.items():
        cells = [name, str(len(seeds))]
        cells += [
            mean_std([100 * r[k] for r in seeds]) for k, _ in TABLE_COLUMNS
        ]
        cells.append(mean_std([r['minutes'] for r in seeds]))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def format_differences(results: Results, baseline: str, skipped=()) -> str:
    """Each row's mean minus the baseline's, metric by metric, in points,
    with the two-sided p of Welch's t-test over the seeds (scipy): small p
    says the gap is unlikely to be seed noise. Not corrected for the many
    comparisons, and weak with few seeds. Rows in ``skipped`` (and the
    baseline) get no line."""
    lines = _header(['loss'] +
                    [f'{t} vs {baseline}' for _, t in TABLE_COLUMNS])
    for name, seeds in results.items():
        if name == baseline or name in skipped:
            continue
        cells = [name]
        for key, _ in TABLE_COLUMNS:
            values = [100 * r[key] for r in seeds]
            base = [100 * r[key] for r in results[baseline]]
            p = ttest_ind(values, base, equal_var=False).pvalue
            cells.append(f'{np.mean(values) - np.mean(base):+.1f} '
                         f'(p {p:.3f})')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
