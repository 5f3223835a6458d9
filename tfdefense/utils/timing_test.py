from tfdefense.utils.timing import bracketed, paired_timings, timings


def test_timings_are_bounded_in_count():
    calls = []
    assert len(timings(lambda: calls.append(1), seconds=60, max_runs=3)) == 3 and len(calls) == 4


def test_paired_timings_alternate_their_functions_and_reverse_the_order():
    calls = []
    a, b = paired_timings([lambda: calls.append("a"), lambda: calls.append("b")], seconds=60, max_runs=3)
    assert len(a) == len(b) == 3 and "".join(calls) == "ab" + "ab" + "ba" + "ab"


def test_bracketed_reads_the_rate_before_and_after_and_divides_by_the_higher(monkeypatch):
    from tfdefense.utils import timing

    readings, order = iter([90.0, 150.0]), []

    def read(dtype):
        order.append("matmul")
        return next(readings)

    monkeypatch.setattr(timing, "matmul_gflops", read)
    assert bracketed(lambda: order.append("measure") or 7) == (7, [90.0, 150.0], 150.0)
    assert order == ["matmul", "measure", "matmul"]
    assert bracketed(lambda: 7, rate=120.0) == (7, [120.0], 120.0) and len(order) == 3  # a given rate: no reading
