"""tools/analysis/compare_numeric_paths.py: how far numbers move between two
numeric paths (hand-computed changes over the seeds both ran) and which
differences from the baseline survive both (same sign, p < alpha on each;
p in closed form for Welch's test on two seeds)."""
import json
import math

import pytest

from mmdet_lossplug.loss_comparison import (TABLE_COLUMNS, format_movement,
                                            format_surviving)
from ..helpers import run_tool

KEYS = [key for key, _ in TABLE_COLUMNS]


def runs(*values):
    """One run per value (points), every metric equal to it."""
    return [dict({key: v / 100 for key in KEYS}, minutes=1.0) for v in values]


def test_movement_is_over_the_seeds_both_paths_ran():
    first = {'focal': runs(40, 42, 44), 'dr': runs(30, 30, 30)}
    second = {'focal': runs(43, 44), 'dr': runs(30, 33)}
    # seeds 1 and 2 in both: focal moves |42 - 43| = 1 and |44 - 44| = 0,
    # dr 0 and 3
    lines = format_movement(first, [0, 1, 2], second, [1, 2]).splitlines()
    assert lines[0].startswith('| loss | seeds | AP: mean / max |change| |')
    assert lines[2] == '| focal | 1 2 |' + ' 0.5 / 1.0 |' * len(KEYS)
    assert lines[3] == '| dr | 1 2 |' + ' 1.5 / 3.0 |' * len(KEYS)
    with pytest.raises(ValueError, match='no seed in both'):
        format_movement(first, [0, 1, 2], second, [5, 6])


def test_a_difference_survives_only_with_one_sign_and_small_p_on_each():
    # 3 and 5 against 0 and 2: +3, two-sided Welch p = 1 - t / sqrt(2 + t^2)
    # with t = 3 / sqrt(2): 0.168 (two degrees of freedom, as in
    # test_compare_losses).
    t = 3 / math.sqrt(2)
    assert f'{1 - t / math.sqrt(2 + t * t):.3f}' == '0.168'
    default = {
        'focal': runs(0, 2),
        'dr': runs(30, 32),  # +30, p tiny: t = 30 / 1.41
        'poly': runs(3, 5),  # +3, p 0.168
        'flip': runs(10, 12),
        'focal + T': runs(0, 2)
    }
    avx2 = {
        'focal': runs(0, 2),
        'dr': runs(29, 31),
        'poly': runs(30, 32),
        'flip': runs(-10, -8)
    }
    lines = format_surviving({
        'default': default,
        'avx2': avx2
    },
                             'focal',
                             skipped=('focal + T', )).splitlines()
    assert lines[0] == ('| loss | metric | vs focal, default | vs focal, avx2 '
                        '| survives |')
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip('|').split('|')]
        rows.setdefault(cells[0], []).append(cells[1:])
    assert set(rows) == {'dr', 'poly', 'flip'}  # no baseline, no + T
    assert [c[0] for c in rows['dr']] == [t for _, t in TABLE_COLUMNS]
    dr_p = 1 - (30 / math.sqrt(2)) / math.sqrt(2 + 450)
    assert rows['dr'][0][1] == f'+30.0 (p {dr_p:.3f})'
    assert all(c[-1] == 'yes' for c in rows['dr'])
    assert rows['poly'][0][1] == '+3.0 (p 0.168)'  # large p on one path
    assert all(c[-1] == 'no' for c in rows['poly'] + rows['flip'])
    assert rows['flip'][0][1].startswith('+10.0')
    assert rows['flip'][0][2].startswith('-10.0')  # -9 - 1


def test_the_tool_reads_two_summaries(tmp_path):

    def summary(path, seeds, results):
        path.write_text(
            json.dumps(
                dict(comparisons={
                    'one-stage': dict(seeds=seeds, results=results)
                })))
        return str(path)

    first = summary(tmp_path / 'a.json', [0, 1], {
        'focal': runs(0, 2),
        'dr': runs(30, 32),
        'focal + T': runs(0, 2)
    })
    second = summary(tmp_path / 'b.json', [0, 1], {
        'focal': runs(1, 2),
        'dr': runs(29, 31),
        'focal + T': runs(1, 2)
    })
    out = run_tool('tools/analysis/compare_numeric_paths.py', first, second)
    assert 'one-stage: how far each number moves from default to avx2' in out
    assert '| focal | 0 1 |' + ' 0.5 / 1.0 |' * len(KEYS) in out
    assert '| focal + T | 0 1 |' in out  # moved, not compared
    assert '| dr | AP50 | +30.0 (p ' in out and '| yes |' in out
    other = tmp_path / 'c.json'
    other.write_text(json.dumps(dict(comparisons={'two-stage': {}})))
    with pytest.raises(AssertionError, match='no comparison in both'):
        run_tool('tools/analysis/compare_numeric_paths.py', first, str(other))
