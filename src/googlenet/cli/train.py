"""`googlenet train`: flags from the configuration's fields; signals, progress bar and printing."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import Any

from googlenet.cli.args import add_renamed
from googlenet.training.config import SECTION_TYPES, field_types, recipe_names

EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: stopped by a signal; --resume continues
EXIT_MAX_STEPS = 0  # a --max-steps stop is the limit asked for, not a failure


def add_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train on digits (default), an image folder or a tar archive",
        description="Train GoogLeNet with a named recipe (YAML) whose every field can be "
                    "overridden by the flag of the same name.")
    p.add_argument("--recipe", help=f"a recipe name ({', '.join(recipe_names())}) or a YAML "
                   "file; default: finetune with -m/--model, else fast with data flags, else digits")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR (or from a checkpoint file) exactly")
    p.add_argument("--max-steps", type=int, default=0, metavar="N",
                   help="this invocation only: save and stop once the run reaches optimizer step "
                        "N (exit status 0); not saved with the run")
    for section, cls in SECTION_TYPES.items():
        group = p.add_argument_group(f"{section} (recipe section {section!r})")
        hints = field_types(cls)
        for f in fields(cls):
            add_field_flag(group, f, hints[f.name])
    add_renamed(p, "--weights", "--model", dest="weights", metavar="MODEL", default=argparse.SUPPRESS)
    add_renamed(p, "--output", "--output-dir", dest="output", metavar="DIR", default=argparse.SUPPRESS)
    p.set_defaults(run=run_train)


def add_field_flag(group: argparse._ArgumentGroup, f: Any, annotation: Any) -> None:
    """One flag for one config field: --<flag>, with the field's help, choices and default."""
    flag = "--" + (f.metadata.get("flag") or f.name).replace("_", "-")
    flags = ("-m", flag) if flag == "--model" else (flag,)  # -m/--model, as in every command
    default = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
    help_text = f"{f.metadata.get('help', '')} (default: {default})".replace("%", "%%")
    if annotation is bool:
        group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=help_text)
    else:
        metavar = {"--model": "MODEL", "--output-dir": "DIR"}.get(flag, f.name.upper())
        group.add_argument(*flags, dest=f.name, metavar=metavar, default=argparse.SUPPRESS,
                           choices=f.metadata.get("choices"), help=help_text)


PHOTO_SIDE = 64  # a typical shorter side above this: photographs (recipe photos), else fast at 32


def default_recipe(overrides: dict) -> tuple[str, str]:
    """The recipe for what was given, and why (the run's first line says both)."""
    if "weights" in overrides:
        return "finetune", f"fine-tuning {overrides['weights']}"
    if not overrides.keys() & {"path", "train_dir", "val_dir"}:
        return "digits", "the built-in digits"
    from googlenet.data.config import DataConfig
    from googlenet.data.trees import typical_short_side

    data = DataConfig(**{k: overrides[k] for k in ("path", "train_dir", "val_dir") if k in overrides})
    side = typical_short_side(data)
    if side is None or side <= PHOTO_SIDE:
        return "fast", ("small images" if side is None else f"small images ({side} px typical "
                        "shorter side), trained at 32x32 as CIFAR-10")
    return "photos", f"photographs ({side} px typical shorter side)"


def under_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ


class StopSignals:
    """SIGINT/SIGTERM ask the run to stop after the current step; a second SIGINT aborts.

    Under torchrun a terminal's Ctrl-C reaches each worker twice (from the terminal, then
    forwarded by torchrun), so there a second SIGINT does not abort: every rank stops at the
    same step and rank 0 saves. (torchrun itself kills the workers 30 s after its own
    Ctrl-C, and a further Ctrl-C ends torchrun.)"""

    def __init__(self, abort_on_second: bool | None = None) -> None:
        self.received: int | None = None
        self.abort_on_second = not under_torchrun() if abort_on_second is None else abort_on_second

    def handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            if self.abort_on_second and signum == signal.SIGINT == self.received:
                raise KeyboardInterrupt
            return
        self.received = signum
        again = ("press Ctrl-C again to abort without saving" if self.abort_on_second
                 else "every process stops at the same step")
        print(f"\n{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
              f"({again})", file=sys.stderr, flush=True)

    def __call__(self) -> bool:
        return self.received is not None

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def console(quiet: bool) -> list[Any]:
    """The library's callbacks: messages on stdout; on stderr a progress bar per epoch when it
    is a terminal, else (a log file) a line at most every 30 s within a long epoch; neither
    when `quiet`."""
    from googlenet.training.callbacks import PrintMessages, ProgressBar

    terminal = sys.stderr.isatty()
    return [PrintMessages(), ProgressBar(file=sys.stderr, disable=quiet or not terminal),
            *([] if quiet or terminal else [EpochLines()])]


class EpochLines:
    """Within an epoch, cli.progress's periodic line (batches done of the epoch's, the rate,
    the time left) for output that goes to a file, where no bar is drawn."""

    def __init__(self, interval: float | None = None, file: Any = None) -> None:
        self.interval, self.file = interval, file
        self.progress: Any = None

    def on_message(self, message: str) -> None:
        pass

    def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        from googlenet.cli.progress import Progress

        self.progress = Progress(f"epoch {epoch + 1}/{epochs}", "batch", interval=self.interval,
                                 file=self.file)
        self.progress.start(batches - done)

    def on_batch(self, result: Any, mean_loss: float) -> None:
        if self.progress is not None:
            self.progress.update(1)

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        self.progress = None


def run_train(args: argparse.Namespace) -> int:
    from googlenet.training.config import field_owner, load_recipe, with_overrides
    from googlenet.training.loop import resume, train

    owner = field_owner()
    overrides = {name: value for name, value in vars(args).items() if name in owner}
    stop = StopSignals()
    with stop.installed():  # from the start, so that an early Ctrl-C still ends cleanly
        if args.resume:  # the run's saved configuration, the flags given on top
            show = console(overrides.get("quiet", False))
            result = resume(args.resume, overrides=overrides, callbacks=show, should_stop=stop,
                            max_steps=args.max_steps)
        else:
            recipe, why = (args.recipe, "as asked") if args.recipe else default_recipe(overrides)
            config = with_overrides(load_recipe(recipe), overrides)
            show = console(config.run.quiet)
            if not config.run.quiet:
                print(f"recipe {recipe}: {why}", flush=True)
            # the run sets its own threads (run.threads, run.follow_free_cores)
            result = train(config, callbacks=show, should_stop=stop, max_steps=args.max_steps)
    if result.stop_reason != "completed":
        print(f"continue with: googlenet train --resume {result.run_dir}", flush=True)
    return EXIT_INTERRUPTED if result.stop_reason == "signal" else EXIT_MAX_STEPS


COMMANDS = (add_train,)
