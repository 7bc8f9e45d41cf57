"""Jobs in worker processes, ``jobs`` at a time, each with its output in
its own log file: on two cores two one-thread trainings finish 1.5x sooner
than one after the other."""
import contextlib
import multiprocessing
import os
import os.path as osp
import sys
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Dict, Hashable, Sequence

import torch


@contextlib.contextmanager
def output_to(log_file: str):
    """Send this process's stdout and stderr (file descriptors, so that
    mmengine's and pycocotools' prints follow) to ``log_file``."""
    os.makedirs(osp.dirname(log_file), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, 'a') as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy_of_fd in zip((1, 2), saved):
            os.dup2(copy_of_fd, fd)
            os.close(copy_of_fd)


def usable_cpus() -> int:
    """The CPUs this process may run on: a scheduler's allotment (Slurm's
    ``--cpus-per-task`` binds a task to its cores), else every CPU."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_job(jobs: int) -> int:
    """The usable CPUs' threads shared among ``jobs`` side by side."""
    return max(1, usable_cpus() // jobs)


def _logged(job: Callable, log_file: str, task: tuple):
    """``job(*task)`` in a worker, its whole story in ``log_file``."""
    with output_to(log_file):
        try:
            return job(*task)
        except Exception:
            traceback.print_exc()
            raise


def run_in_parallel(
        job: Callable, tasks: Sequence[tuple], jobs: int,
        log_file: Callable[[tuple], str], describe: Callable[[tuple], str],
        on_done: Callable[[tuple, object], None]) -> Dict[Hashable, object]:
    """``job(*task)`` for every task, ``jobs`` at a time in fresh
    processes of ``threads_per_job(jobs)`` torch threads, in order of
    submission; ``on_done(task, result)`` as each ends.

    Args:
        job (Callable): A module-level function (it is pickled).
        tasks (Sequence[tuple]): Its arguments, one tuple per run.
        jobs (int): Runs side by side.
        log_file (Callable): The log of a task.
        describe (Callable): A task in words, for the error of a failure.
        on_done (Callable): Called in this process when a task ends.

    Returns:
        dict: Each task's result.

    Raises:
        RuntimeError: At the first failure, naming the task and its log;
        the tasks not yet started never start.
    """
    finished, waiting, running = {}, iter(tasks), {}

    def start_next(pool):
        for task in waiting:
            running[pool.submit(_logged, job, log_file(task), task)] = task
            return

    # spawn: a fresh interpreter per worker, not a fork of this one's
    # thread pools. At most ``jobs`` runs are submitted at a time, so that
    # a failure stops the rest from starting.
    with ProcessPoolExecutor(
            jobs,
            mp_context=multiprocessing.get_context('spawn'),
            initializer=torch.set_num_threads,
            initargs=(threads_per_job(jobs), )) as pool:
        for _ in range(jobs):
            start_next(pool)
        while running:
            ended, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in ended:
                task = running.pop(future)
                try:
                    finished[task] = future.result()
                except Exception as error:
                    raise RuntimeError(
                        f'{describe(task)} failed: {error!r}; its output is '
                        f'in {log_file(task)}') from error
                start_next(pool)
                on_done(task, finished[task])
    return finished
