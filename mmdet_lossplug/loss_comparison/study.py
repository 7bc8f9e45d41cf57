"""A comparison's rows over seeds, trained side by side, with a line of
progress as each run ends, or read from the runs that finished (however
they were started); the results by row, seeds in order, the baseline's
temperature-scaled twin as one more row."""
import functools
import os.path as osp
import time
from typing import List, Sequence, Tuple

from .process_pool import run_in_parallel, threads_per_job
from .rows import Comparison
from .tables import TABLE_COLUMNS, Results
from .training import RESULT_FILE, run_dir, run_row, saved_run


def by_row(comparison: Comparison, finished: dict, rows: Sequence[str],
           seeds: Sequence[int]) -> Results:
    """``{(row, seed): run}`` as results by row, seeds in order (those
    that finished), the baseline's twin after temperature scaling as
    :attr:`Comparison.temperature_row`."""
    results = {
        name: [finished[name, s] for s in seeds if (name, s) in finished]
        for name in rows
    }
    results = {name: runs for name, runs in results.items() if runs}
    if comparison.baseline in results:
        results[comparison.temperature_row] = [
            dict(run['temperature_scaled'])
            for run in results[comparison.baseline]
        ]
        for run in results[comparison.baseline]:
            run.pop('temperature_scaled')
    return results


def collect_comparison(comparison: Comparison, rows: Sequence[str],
                       seeds: Sequence[int], iters: int,
                       work_dir: str) -> Tuple[Results, List[tuple]]:
    """The results of the (row, seed) runs of ``rows`` that finished under
    today's settings (their ``result.json``), and the ``(row, seed)`` of
    those that did not."""
    finished, missing = {}, []
    for seed in seeds:
        for name in rows:
            run = saved_run(comparison, iters, work_dir, name, seed)
            if run is None:
                missing.append((name, seed))
            else:
                finished[name, seed] = dict(run, finished_earlier=True)
    return by_row(comparison, finished, rows, seeds), missing


def run_comparison(comparison: Comparison, rows: Sequence[str],
                   seeds: Sequence[int], iters: int, jobs: int,
                   work_dir: str) -> Results:
    """Every (row, seed) run of ``rows``, ``jobs`` at a time, logs in
    ``work_dir/<row>/seed<S>/run.log``."""
    tasks = [(name, seed) for seed in seeds for name in rows]
    print(
        f'{len(tasks)} trainings of {iters} iterations, {jobs} at a '
        f'time on {threads_per_job(jobs)} thread(s) each; logs in '
        f'{work_dir}/<loss>/seed<S>/run.log',
        flush=True)
    start, done, trained = time.time(), [], []

    def progress(task, run):
        name, seed = task
        done.append(task)
        shown = ', '.join(f'{t} {100 * run[k]:.1f}' for k, t in TABLE_COLUMNS)
        if run['finished_earlier']:
            print(
                f'=== [{len(done)}/{len(tasks)}] {name}, seed {seed}: '
                f"{shown} ({run['minutes']:.1f} min, finished earlier: "
                f'{RESULT_FILE} of the same settings)',
                flush=True)
            return
        trained.append(task)
        elapsed = (time.time() - start) / 60
        print(
            f'=== [{len(done)}/{len(tasks)}] {name}, seed {seed}: {shown} '
            f"({run['minutes']:.1f} min); {elapsed:.1f} min so far, about "
            f'{elapsed / len(trained) * (len(tasks) - len(done)):.1f} min to '
            'go',
            flush=True)

    finished = run_in_parallel(
        functools.partial(run_row, comparison, iters, work_dir),
        tasks,
        jobs,
        log_file=lambda task: osp.join(run_dir(work_dir, *task), 'run.log'),
        describe=lambda task: f'training {task[0]} with seed {task[1]}',
        on_done=progress)
    return by_row(comparison, finished, rows, seeds)
