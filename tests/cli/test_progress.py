"""A long command's progress: a bar on a terminal, periodic lines with a total, a rate and the
time left in a log file; evaluate announces its total before the first batch."""

import io

from googlenet.cli.progress import Progress, clock


def test_a_log_file_gets_periodic_lines_with_total_rate_and_time_left():
    log = io.StringIO()
    progress = Progress("evaluate", "img", interval=0.0, file=log)
    progress.start(1000)
    progress.update(250)
    progress.update(250)
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("evaluate: 500/1,000 img (50%), ")
    assert " img/s, " in lines[-1] and lines[-1].endswith(" left")
    quiet = io.StringIO()
    rare = Progress("evaluate", "img", interval=3600.0, file=quiet)  # at most one line an hour
    rare.start(10)
    rare.update(5)
    assert quiet.getvalue() == ""
    assert clock(3725) == "1:02:05" and clock(65) == "1:05"


def test_evaluate_announces_the_total_of_its_passes(digits_run):
    from googlenet.inference.evaluate import evaluate
    from googlenet.inference.predictor import Predictor

    totals, seen = [], []
    report = evaluate(Predictor.load(digits_run.run_dir), "digits", limit=40, workers=0,
                      on_start=totals.append, on_batch=lambda n, rate: seen.append(n))
    assert totals == [sum(seen)] and report.main.images == sum(seen)
