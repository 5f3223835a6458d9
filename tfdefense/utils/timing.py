"""How the zoo times code: repeated calls after a warm-up, and this machine's fp32 matmul rate beside them.

This module imports nothing of the package (only numpy and TensorFlow), so a benchmark that runs an older
commit's package (``benchmarks/before_after.py``) loads this file by its path and times both sides alike.

Example:
    >>> seconds = timings(lambda: sum(range(1000)), seconds=0.01, max_runs=5)
    >>> 2 <= len(seconds) <= 5
    True
"""

import time

import numpy as np


def paired_timings(fns, seconds=2.0, max_runs=50, min_runs=2):
    """Seconds per call of each of ``fns`` after one warm-up call each, called in turn (the order reversed
    every other round) so that a drifting load on the machine falls on all of them alike: at least
    ``min_runs`` rounds, then until ``seconds`` have passed or ``max_runs`` rounds were made."""
    for fn in fns:
        fn()
    out, start = [[] for _ in fns], time.perf_counter()
    while len(out[0]) < min_runs or (len(out[0]) < max_runs and time.perf_counter() - start < seconds):
        order = range(len(fns)) if len(out[0]) % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            t = time.perf_counter()
            fns[i]()
            out[i].append(time.perf_counter() - t)
    return out


def timings(fn, seconds=2.0, max_runs=50, min_runs=2):
    """Seconds per call of ``fn`` (`paired_timings` of one function)."""
    return paired_timings([fn], seconds, max_runs, min_runs)[0]


def matmul_gflops(dtype="float32", seconds=1.0, n=2048):
    """This machine's matmul rate (GFLOP/s) for an [n, n] x [n, n] product in ``dtype``: the median call."""
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_normal([n, n], [0, 0]), dtype)
    b = tf.transpose(a)
    fn = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    return 2 * n ** 3 / float(np.median(timings(lambda: fn().numpy(), seconds))) / 1e9


def bracketed(measure, rate=None):
    """(what ``measure()`` returns, the matmul readings, the rate to divide by). Unless ``rate`` is given,
    the fp32 matmul rate is read right before and right after ``measure`` and the higher reading is used:
    the load of a shared machine drifts over the minutes a run takes, and one slow reading (102 against the
    usual 200 GFLOP/s here) must not inflate a fraction of it."""
    if rate is not None:
        return measure(), [rate], rate
    before = round(matmul_gflops("float32"), 1)
    result = measure()
    readings = [before, round(matmul_gflops("float32"), 1)]
    return result, readings, max(readings)
