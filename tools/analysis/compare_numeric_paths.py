"""How far compare_losses' numbers move between two numeric paths (the same
runs with oneDNN, MKL and ATen limited to AVX2 and the op built without
AVX-512, which give the numbers of a machine without AVX-512:
docs/neon_trees), and which differences from each baseline survive both:
the same sign and Welch's p below ``--alpha`` on each path.

    python tools/analysis/compare_numeric_paths.py FIRST.json SECOND.json
        [--names default avx2] [--alpha 0.05]

FIRST and SECOND are ``results_<split>.json`` files of compare_losses;
each comparison in both gets a table of changes over the seeds both ran
and a table of differences from its baseline on each path.
"""
import argparse
import json

from mmdet_lossplug.loss_comparison import (COMPARISONS, format_movement,
                                            format_surviving)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('first', help='results_<split>.json of one path')
    parser.add_argument('second', help='results_<split>.json of the other')
    parser.add_argument(
        '--names', nargs=2, default=['default', 'avx2'], help='path names')
    parser.add_argument('--alpha', type=float, default=0.05)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    summaries = []
    for path in (args.first, args.second):
        with open(path) as f:
            summaries.append(json.load(f)['comparisons'])
    first, second = summaries
    shared = [name for name in first if name in second]
    if not shared:
        raise SystemExit(f'no comparison in both {args.first} '
                         f'({sorted(first)}) and {args.second} '
                         f'({sorted(second)})')
    for name in shared:
        comparison = COMPARISONS[name]
        a, b = first[name], second[name]
        print(f'\n{name}: how far each number moves from {args.names[0]} to '
              f'{args.names[1]}, points:')
        print(
            format_movement(a['results'], a['seeds'], b['results'],
                            b['seeds']))
        print(f'\n{name}: differences from {comparison.baseline} on each '
              f'path (Welch p over its seeds: {a["seeds"]} and '
              f'{b["seeds"]}); survives = same sign, p < {args.alpha} on '
              'both:')
        print(
            format_surviving(
                dict(zip(args.names, (a['results'], b['results']))),
                comparison.baseline,
                skipped=(comparison.temperature_row, ),
                alpha=args.alpha))


if __name__ == '__main__':
    main()
