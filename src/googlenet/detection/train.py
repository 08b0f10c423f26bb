"""`train_detection(config)`: train a detector of any method into a run directory.

    result = train_detection(DetectConfig(data="../shared/data/raccoon", method="rcnn"))
    detector = load_detector(result.run_dir)

A library function: messages go to `on_message`, progress to `on_progress` (runtime.progress),
a stop is asked through `should_stop`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from googlenet.artifact import rundir
from googlenet.detection.data import DetectionData, load_detection
from googlenet.detection.detector import (
    FORMAT,
    METHODS,
    VERSION,
    build_torchvision_model,
    read_record,
)
from googlenet.detection.loop import LoopConfig, epoch_stage, train_detector
from googlenet.detection.proposals import DEFAULT_MAX_SIDE, DEFAULT_SETTING, ProposalCache
from googlenet.detection.rcnn import RCNNSettings
from googlenet.detection.regions import RegionConfig, extract_regions, mean_pixel, write_marker
from googlenet.errors import ConfigError
from googlenet.runtime.files import DirectoryLock, write_atomically
from googlenet.runtime.progress import OnProgress, no_progress
from googlenet.training.runs import default_run_dir

DEFAULT_CACHE = Path("~/.cache/googlenet/proposals")


@dataclass(frozen=True)
class DetectConfig:
    data: str
    method: str = "rcnn"
    split: str | None = "train"  # None: every annotated image
    val_split: str | None = None  # R-CNN's region validation; None: the training images' regions
    model: str | None = None  # the trunk's start: any model source; None: fresh weights
    preprocess: str | None = None  # a bare state dict's normalisation
    variant: str | None = None  # fresh trunks: paper or bn (default bn)
    output: str | None = None
    seed: int = 0
    device: str = "auto"  # auto: CUDA when there is one (runtime.device.resolve_device)
    threads: int = 0  # intra-op threads; 0: runtime.threads.training_threads (a resume: the run's)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    minutes: float = 0.0  # a wall-clock budget for the training (0: none)
    on_bad: str = "error"
    # R-CNN
    recipe: str | None = None  # default: finetune with a model, else fast
    input_size: int | None = None  # default 224 with a model, else 64
    proposals: str = DEFAULT_SETTING  # Selective Search (proposals.SETTINGS)
    background_ratio: float = 3.0  # background crops per object crop (R-CNN's 96 to 32)
    all_background: bool = False  # every background proposal, object crops repeated to the ratio
    max_side: int = DEFAULT_MAX_SIDE
    cache_dir: str | None = str(DEFAULT_CACHE)
    train_overrides: dict[str, Any] = field(default_factory=dict)  # more `googlenet train` fields
    # Faster R-CNN
    image_size: int = 320


@dataclass
class DetectResult:
    run_dir: Path
    method: str
    stop_reason: str
    seconds: float


def record_for(config: DetectConfig, data: DetectionData, extra: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "method": config.method,
            "classes": list(data.classes), "data": str(Path(config.data).absolute()),
            "split": config.split, "trunk": config.model, **extra}


def new_run_dir(config: DetectConfig) -> Path:
    run_dir = Path(config.output) if config.output else default_run_dir(f"detect-{config.method}")
    if (run_dir / rundir.DETECTION_RECORD).exists() or rundir.last_checkpoint(run_dir).exists():
        raise ConfigError(f"{run_dir} already holds a detection run; resume it, or choose another "
                          "output directory")
    return run_dir


def train_detection(config: DetectConfig, *, resume: str | Path | None = None,
                    on_message: Callable[[str], None] = lambda m: None,
                    should_stop: Callable[[], bool] = lambda: False, max_steps: int = 0,
                    on_progress: OnProgress = no_progress) -> DetectResult:
    """Train as `config` says; with `resume` (a run directory), continue that run (its saved
    record decides the method; `config` gives the epochs and budget). `on_progress(stage, unit,
    done, total)`: rcnn's Selective Search over each split's images (stage "<split> regions"),
    faster-rcnn's reading of the images (loop.READING), then each epoch's batches ("epoch 3/20")."""
    if resume is not None:
        record = read_record(resume)
        config = dataclasses.replace(config, method=record["method"], data=record["data"],
                                     split=record["split"], output=str(resume))
        run_dir = Path(resume)
    else:
        if config.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {config.method!r}")
        run_dir = new_run_dir(config)
    data = load_detection(config.data, config.split, config.on_bad)
    for line in data.skipped:
        on_message(f"skipped annotation: {line}")
    start = time.perf_counter()
    if config.method == "rcnn":
        reason = train_rcnn(config, data, run_dir, resume is not None, on_message, should_stop, max_steps,
                            on_progress)
    else:
        reason = train_torchvision(config, data, run_dir, resume is not None, on_message, should_stop,
                                   max_steps, on_progress)
    return DetectResult(run_dir, config.method, reason, time.perf_counter() - start)


# --- R-CNN: regions, then the region classifier by googlenet's own training loop.


def rcnn_train_config(config: DetectConfig, regions: Path, run_dir: Path, epochs: int | None):
    from googlenet.training.config import load_recipe, with_overrides

    recipe = config.recipe or ("finetune" if config.model else "fast")
    input_size = config.input_size or (224 if config.model else 64)
    val = regions / ("val" if config.val_split else "train")
    overrides: dict[str, Any] = {
        "path": "", "train_dir": str(regions / "train"), "val_dir": str(val),
        "input_size": input_size, "eval_crop_ratio": 1.0, "output": str(run_dir), "seed": config.seed,
        "device": config.device, "weights": config.model, "quiet": True, "name": "detect-rcnn",
        "in_memory": True, "workers": 0, "threads": config.threads,  # 0: the training loop's default
        # the warped region is seen whole: pad-and-crop and flips, no random-area crops
        "policy": "crop-flip", "crop_padding": max(2, input_size // 16), **config.train_overrides}
    if config.variant and not config.model:
        overrides["variant"] = config.variant
    if config.model:
        overrides["aux_logits"] = False
    if config.preprocess:
        overrides["preprocess"] = config.preprocess
    for name in ("batch_size", "lr"):
        if getattr(config, name) is not None:
            overrides[name] = getattr(config, name)
    if epochs is not None:
        overrides["epochs"] = epochs
    return with_overrides(load_recipe(recipe), {k: v for k, v in overrides.items() if v is not None})


def region_fill(config: DetectConfig, train_config) -> tuple[float, float, float]:
    """The mean pixel of the region classifier's preprocessing: its weights' when it starts from
    a model (training takes their normalisation), else its recipe's."""
    from googlenet.data.config import preprocessing

    if config.model:
        from googlenet.weights.sources import load_artifact

        return mean_pixel(load_artifact(config.model, preprocess=config.preprocess).preprocessing)
    return mean_pixel(preprocessing(train_config.data))


def region_config(config: DetectConfig, warp_size: int, fill: tuple[float, float, float]) -> RegionConfig:
    return RegionConfig(setting=config.proposals, max_side=config.max_side, warp_size=warp_size,
                        fill=fill, background_ratio=config.background_ratio,
                        all_background=config.all_background, seed=config.seed)


def prepare_regions(config: DetectConfig, data: DetectionData, regions: Path, warp_size: int,
                    fill: tuple[float, float, float], on_message: Callable[[str], None],
                    on_progress: OnProgress = no_progress) -> None:
    cache = ProposalCache(Path(config.cache_dir).expanduser() if config.cache_dir else None)
    rc = region_config(config, warp_size, fill)
    splits: list[tuple[str, DetectionData]] = [("train", data)]
    if config.val_split:
        splits.append(("val", load_detection(config.data, config.val_split, config.on_bad)))
    for name, part in splits:
        start, stage = time.perf_counter(), f"{name} regions"
        on_progress(stage, "img", 0, len(part.samples))
        counts = extract_regions(part, regions / name, rc, cache, on_image=partial(on_progress, stage, "img"))
        on_message(f"{name} regions: {counts.objects} object and {counts.background} background crops "
                   f"from {counts.images} images ({config.proposals} Selective Search, "
                   f"{time.perf_counter() - start:.0f} s)")
        for line in counts.skipped or []:
            on_message(f"skipped unreadable image {line}")
        write_marker(regions / name, counts, rc)


def epochs_for_budget(seconds: float, regions: int, images_per_second: float) -> int:
    """As many whole epochs as the budget holds at the measured speed (at least one)."""
    return max(1, int(seconds * images_per_second / max(regions, 1)))


def measure_speed(train_config) -> float:
    """Training images/s of the region classifier: a few steps on random data."""
    import torch
    import torch.nn.functional as F

    from googlenet.model.network import build_network

    m = train_config.model
    model = build_network(m.variant or "bn", num_classes=2, aux_logits=m.aux_logits)
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    batch, size = train_config.optim.batch_size, train_config.data.input_size
    x = torch.randn(batch, 3, size, size).to(memory_format=torch.channels_last)
    y = torch.zeros(batch, dtype=torch.long)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        logits, aux = model.forward_train(x)
        loss = F.cross_entropy(logits, y) + sum(F.cross_entropy(a, y) for a in aux)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return 0.8 * batch / sorted(times)[1]  # the median step, with a margin: the machine may be shared


def count_regions(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*.png"))


def train_rcnn(config: DetectConfig, data: DetectionData, run_dir: Path, resumed: bool,
               on_message: Callable[[str], None], should_stop: Callable[[], bool], max_steps: int,
               on_progress: OnProgress = no_progress) -> str:
    from googlenet.training.callbacks import Callback
    from googlenet.training.loop import resume, train

    regions = run_dir / rundir.REGIONS
    deadline = time.perf_counter() + 60 * config.minutes if config.minutes > 0 else None
    probe = rcnn_train_config(config, regions, run_dir, config.epochs)
    warp_size = probe.data.input_size  # eval_crop_ratio 1: the resize size is the input size
    if not resumed:
        run_dir.mkdir(parents=True, exist_ok=True)
        with DirectoryLock(run_dir):
            rcnn = RCNNSettings(setting=config.proposals, max_side=config.max_side)
            record = record_for(config, data, {"rcnn": dataclasses.asdict(rcnn)})
            write_atomically(run_dir / rundir.DETECTION_RECORD, json.dumps(record, indent=1).encode())
    if not (regions / "train" / "regions.json").is_file():
        with DirectoryLock(run_dir):
            prepare_regions(config, data, regions, warp_size, region_fill(config, probe), on_message,
                            on_progress)
    epochs = config.epochs
    if deadline is not None and not resumed:
        left = deadline - time.perf_counter()
        rate = measure_speed(probe)
        epochs = epochs or epochs_for_budget(left, count_regions(regions / "train"), rate)
        on_message(f"budget: {left / 60:.1f} minutes left for the region classifier, at about "
                   f"{rate:.0f} crops/s: {epochs} epoch(s)")
    train_config = rcnn_train_config(config, regions, run_dir, epochs)

    class Relay(Callback):
        """The region classifier's run: its messages, and its epochs' batches as progress."""

        stage, done, batches = "", 0, 0

        def on_message(self, message: str) -> None:
            on_message(message)

        def on_epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None:
            self.stage, self.done, self.batches = epoch_stage(epoch, epochs), done, batches
            on_progress(self.stage, "batch", done, batches)

        def on_batch(self, result: Any, mean_loss: float) -> None:
            self.done += 1
            on_progress(self.stage, "batch", self.done, self.batches)

    call = dict(callbacks=[Relay()], should_stop=should_stop, max_steps=max_steps, deadline=deadline)
    if resumed:
        asked = {k: v for k, v in (("epochs", config.epochs), ("batch_size", config.batch_size),
                                   ("lr", config.lr), ("threads", config.threads or None))
                 if v is not None}
        return resume(run_dir, overrides=asked, **call).stop_reason
    return train(train_config, **call).stop_reason


# --- Faster R-CNN (on GoogLeNet, or the peer) by the detection loop.


def frcnn_model(config: DetectConfig, classes: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """The detection model and the record that rebuilds it."""
    from googlenet.artifact.build import model_from_artifact
    from googlenet.data.preprocessing import preset
    from googlenet.detection.frcnn import faster_rcnn, mobilenet_peer
    from googlenet.model.network import build_network
    from googlenet.weights.sources import load_artifact

    extra: dict[str, Any] = {"image_size": config.image_size}
    if config.method == "fasterrcnn-mobilenet":
        return mobilenet_peer(len(classes), config.image_size), extra
    if config.model:
        artifact = load_artifact(config.model, preprocess=config.preprocess)
        if config.variant and config.variant != artifact.variant:
            raise ConfigError(f"{config.model} holds a {artifact.variant!r} model, not {config.variant!r}")
        trunk, prep = model_from_artifact(artifact, aux_logits=False), artifact.preprocessing
    else:
        trunk = build_network(config.variant or "bn", num_classes=1, aux_logits=False)
        prep = preset(config.preprocess or "imagenet")
    frozen = bool(config.model) and trunk.variant.batch_norm
    model = faster_rcnn(trunk, prep, len(classes), config.image_size)
    if frozen:
        from googlenet.training.finetune import freeze_batch_norms

        freeze_batch_norms(model.backbone.body)
    extra.update(variant=trunk.variant.name, preprocessing=prep.to_dict(), frozen_batch_norm=frozen)
    return model, extra


def loop_config(config: DetectConfig, saved: dict[str, Any] | None = None) -> LoopConfig:
    values = dict(saved or {})
    values.update({k: v for k, v in (("epochs", config.epochs), ("batch_size", config.batch_size),
                                      ("lr", config.lr)) if v is not None})
    values.update(image_size=config.image_size if saved is None else saved["image_size"],
                  seed=config.seed if saved is None else saved["seed"],
                  budget_seconds=60 * config.minutes)
    return LoopConfig(**values)


def loop_threads(config: DetectConfig, record: dict[str, Any] | None,
                 on_message: Callable[[str], None]) -> int:
    """A fresh run's fixed thread count (runtime.threads.training_threads), or a resumed run's
    recorded one unless another is asked for, which is said: results depend on the count."""
    from googlenet.runtime.threads import run_thread_count

    threads, changed = run_thread_count(config.threads, (record or {}).get("threads"))
    if changed is not None:
        on_message(changed)
    return threads


def training_device(config: DetectConfig):
    """`auto`: CUDA when there is one, else MPS, else the CPU (runtime.device.resolve_device)."""
    from googlenet.runtime.device import resolve_device

    return resolve_device(config.device)


def train_torchvision(config: DetectConfig, data: DetectionData, run_dir: Path, resumed: bool,
                      on_message: Callable[[str], None], should_stop: Callable[[], bool],
                      max_steps: int, on_progress: OnProgress = no_progress) -> str:
    import torch

    device = training_device(config)
    if resumed:
        record = read_record(run_dir)
        model = build_torchvision_model(record)
        loop = loop_config(config, record["loop"])
    else:
        torch.manual_seed(config.seed)  # the fresh weights are a function of the seed
        model, extra = frcnn_model(config, data.classes)
        loop = loop_config(config)
        record = record_for(config, data, {**extra, "loop": dataclasses.asdict(loop)})
    threads = loop_threads(config, record if resumed else None, on_message)
    record = {**record, "loop": dataclasses.asdict(loop), "threads": threads}
    run_dir.mkdir(parents=True, exist_ok=True)
    before = torch.get_num_threads()
    with DirectoryLock(run_dir):
        write_atomically(run_dir / rundir.DETECTION_RECORD, json.dumps(record, indent=1).encode())
        on_message(f"run directory: {run_dir}")
        on_message(f"training {config.method} on {len(data)} images, {len(data.classes)} classes, "
                   f"{loop.epochs} epochs, batch {loop.batch_size}, lr {loop.lr:g}, {device}, "
                   f"{threads} thread(s)" + (f", budget {config.minutes:g} min" if config.minutes else ""))
        torch.set_num_threads(threads)
        try:
            state = train_detector(model.to(device), data, run_dir, loop, {"record": record},
                                   resume=resumed, on_message=on_message, should_stop=should_stop,
                                   max_steps=max_steps, threads=threads, on_progress=on_progress)
        finally:
            torch.set_num_threads(before)  # the caller's setting, as it was
    if should_stop():
        return "signal"
    if max_steps and state.step >= max_steps:
        return "max_steps"
    if loop.budget_seconds and state.epoch < loop.epochs:
        return "budget"
    return "completed"
