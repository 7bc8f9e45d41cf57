"""The comparison's tables: mean ± sample standard deviation over seeds of
each row, each row's difference from the baseline with Welch's p, and,
between numeric paths (the same runs on other instruction sets), how far
the numbers move and which differences survive every path."""
from typing import Dict, List, Sequence, Tuple

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
    """Mean ± sample standard deviation; one value alone, which has no
    spread to show."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return f'{values.mean():.1f} ± {values.std(ddof=1):.1f}'


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


def format_per_class(results: Results) -> str:
    """Mean ± sample standard deviation over seeds of each row's
    :data:`COLUMNS` class by class (``run['per_class']``), in percent; NaN
    where a class has no ground truth (AP) or no detection (calibration
    errors) in the scored images. Rows of runs without per-class metrics
    (made before they were kept) are left out."""
    lines = _header(['loss', 'class', 'seeds'] +
                    [f'{t} (%)' for _, t in COLUMNS])
    for name, seeds in results.items():
        if not seeds or not all('per_class' in r for r in seeds):
            continue
        for cls in seeds[0]['per_class']:
            cells = [name, cls, str(len(seeds))]
            cells += [
                mean_std([100 * r['per_class'][cls][k] for r in seeds])
                for k, _ in COLUMNS
            ]
            lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def difference(results: Results, name: str, baseline: str,
               key: str) -> Tuple[float, float]:
    """Row ``name``'s mean minus the baseline's for metric ``key``, in
    points, and the two-sided p of Welch's t-test over the seeds (scipy)."""
    values = [100 * r[key] for r in results[name]]
    base = [100 * r[key] for r in results[baseline]]
    p = ttest_ind(values, base, equal_var=False).pvalue
    return float(np.mean(values) - np.mean(base)), float(p)


def format_differences(results: Results, baseline: str, skipped=()) -> str:
    """Each row's :func:`difference` from the baseline, metric by metric:
    small p says the gap is unlikely to be seed noise. Not corrected for the
    many comparisons, and weak with few seeds. Rows in ``skipped`` (and the
    baseline) get no line."""
    lines = _header(['loss'] +
                    [f'{t} vs {baseline}' for _, t in TABLE_COLUMNS])
    for name in results:
        if name == baseline or name in skipped:
            continue
        cells = [name]
        for key, _ in TABLE_COLUMNS:
            gap, p = difference(results, name, baseline, key)
            cells.append(f'{gap:+.1f} (p {p:.3f})')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def format_movement(first: Results, first_seeds: Sequence[int],
                    second: Results, second_seeds: Sequence[int]) -> str:
    """How far each row's numbers move between two numeric paths: per
    metric, the mean and the largest absolute change, in points, over the
    seeds both ran (the same row and seed on each path)."""
    seeds = [s for s in first_seeds if s in second_seeds]
    if not seeds:
        raise ValueError(f'no seed in both runs: {list(first_seeds)} and '
                         f'{list(second_seeds)}')
    lines = _header(['loss', 'seeds'] +
                    [f'{t}: mean / max |change|' for _, t in TABLE_COLUMNS])
    for name in first:
        if name not in second:
            continue
        cells = [name, ' '.join(map(str, seeds))]
        for key, _ in TABLE_COLUMNS:
            changes = [
                100 * abs(first[name][first_seeds.index(s)][key] -
                          second[name][second_seeds.index(s)][key])
                for s in seeds
            ]
            cells.append(f'{np.mean(changes):.1f} / {max(changes):.1f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def format_surviving(paths: Dict[str, Results],
                     baseline: str,
                     skipped=(),
                     alpha: float = 0.05) -> str:
    """Each row's difference from the baseline on every numeric path
    (``{path name: results}``), metric by metric, and whether it survives
    them all: the same sign, and Welch's p below ``alpha`` on each path."""
    names = list(paths)
    first = paths[names[0]]
    lines = _header(['loss', 'metric'] +
                    [f'vs {baseline}, {n}' for n in names] + ['survives'])
    for name in first:
        if name == baseline or name in skipped or not all(
                name in results for results in paths.values()):
            continue
        for key, title in TABLE_COLUMNS:
            gaps = [difference(paths[n], name, baseline, key) for n in names]
            signs = {np.sign(gap) for gap, _ in gaps}
            survives = len(signs) == 1 and 0 not in signs and all(
                p < alpha for _, p in gaps)
            cells = [name, title]
            cells += [f'{gap:+.1f} (p {p:.3f})' for gap, p in gaps]
            cells.append('yes' if survives else 'no')
            lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
