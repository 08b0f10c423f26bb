"""The callbacks a caller of `train` may pass: messages printed, a progress bar per epoch."""

import io
import sys

from googlenet.cli.train import console
from googlenet.training.callbacks import PrintMessages, ProgressBar
from googlenet.training.engine import EpochResult


def test_the_progress_bar_shows_each_epochs_batches_and_loss():
    out = io.StringIO()
    bar = ProgressBar(file=out)
    bar.on_epoch_start(0, 2, batches=3, done=1)  # resumed after the epoch's first batch
    bar.on_batch(EpochResult(images=64, seconds=2.0), 0.5)
    bar.bar.refresh()
    text = out.getvalue()
    assert "epoch 1/2" in text and "2/3" in text and "loss=0.500" in text and "img_s=32" in text
    bar.on_epoch_end({"epoch": 1})
    assert bar.bar is None


def test_a_disabled_bar_draws_nothing():
    out = io.StringIO()
    bar = ProgressBar(file=out, disable=True)
    bar.on_epoch_start(0, 1, batches=2, done=0)
    bar.on_batch(EpochResult(images=8, seconds=1.0), 1.0)
    bar.on_epoch_end({"epoch": 1})
    assert out.getvalue() == ""


def test_print_messages_prints_each_message(capsys):
    PrintMessages().on_message("run directory: runs/x")
    assert capsys.readouterr().out == "run directory: runs/x\n"


def test_the_cli_reuses_them_with_a_bar_only_on_a_terminal(monkeypatch):
    messages, bar, _ = console(quiet=False)  # and EpochLines: stderr is a file here
    assert isinstance(messages, PrintMessages) and isinstance(bar, ProgressBar)
    assert bar.file is sys.stderr and bar.disable  # pytest's stderr is no terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert not console(quiet=False)[1].disable and len(console(quiet=False)) == 2
    assert console(quiet=True)[1].disable


def test_the_package_exports_training_by_its_short_names():
    import googlenet
    from googlenet.training import callbacks, config, loop

    assert (googlenet.train, googlenet.resume) == (loop.train, loop.resume)
    assert googlenet.with_overrides is config.with_overrides
    assert (googlenet.Callback, googlenet.PrintMessages, googlenet.ProgressBar) == (
        callbacks.Callback, callbacks.PrintMessages, callbacks.ProgressBar)
    assert all(getattr(googlenet, name) is not None for name in googlenet.EXPORTS)  # every path resolves



def test_into_a_log_file_a_long_epoch_reports_at_intervals():
    from googlenet.cli.train import EpochLines

    assert any(isinstance(c, EpochLines) for c in console(False))  # stderr is no terminal here
    assert not any(isinstance(c, EpochLines) for c in console(True))
    log = io.StringIO()
    lines = EpochLines(interval=0.0, file=log)
    lines.on_epoch_start(0, 2, 10, 4)  # resumed 4 batches into the epoch
    for _ in range(3):
        lines.on_batch(EpochResult(), 0.5)
    last = log.getvalue().splitlines()[-1]
    assert last.startswith("epoch 1/2: 3/6 batch (50%), ") and last.endswith(" left")
