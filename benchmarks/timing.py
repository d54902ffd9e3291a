"""Timing shared by the benchmarks: the median wall time of a step after one warm-up run."""
import statistics
import time


def timed(step, repeats: int) -> float:
    """Median seconds of ``step()`` over ``repeats`` runs, after one warm-up run."""
    step()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        step()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)
