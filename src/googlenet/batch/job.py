"""A batch job on Ray Data: the files of `list_inputs`, decoded and transformed by CPU tasks,
run through the model by a pool of actors, written as Parquet parts as the job goes.

    result = run_batch(BatchJob(model="best.pt", inputs=("photos/",), output="predictions/"))

The stages reuse the single-process commands' code, so the answers are theirs: each decode task
reads a file boundedly and applies the model's own eval transform (`read_transformed`, as
`googlenet predict` does); each actor holds a `Predictor.load(...)` of the model, as `predict`
loads it, and scores with `Predictor.crop_scores` and `top` (predict) or `layer_output` (features).

A file that cannot be used becomes a row whose `error` names the reason (null otherwise). An actor
that dies is restarted and its batches retried (Ray Data's actor pools set max_restarts and
max_task_retries to -1); a decode task whose worker dies is retried (Ray's max_retries). With
`resume`, the files whose (file, size, mtime_ns) the output already holds are skipped.

CPU accounting: Ray's CPU counts are logical. An actor runs `threads` intra-op threads (the node's
cores shared out between its actors, so the model alone does not oversubscribe the node) and
requests 3/4 of them; a decode task requests 1/4 of a core and a write task 1/10. So decoding and
writing, which are light beside the network, fit in beside actors that use every core.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import ray
import torch
from ray.data import ActorPoolStrategy, Datasink
from ray.data.block import BlockAccessor
from ray.data.extensions import ArrowTensorArray

from googlenet.batch.inputs import list_inputs, read_any
from googlenet.batch.parts import KEY, prepare_output, task_metadata, write_part
from googlenet.data.config import DEFAULT_MAX_IMAGE_MB, MB
from googlenet.data.crops import multi_crop
from googlenet.data.images import read_transformed
from googlenet.data.preprocessing import Preprocessing
from googlenet.errors import ConfigError, ModelSourceError
from googlenet.inference.backends import TorchBackend, open_backend
from googlenet.inference.features import layer_output
from googlenet.inference.options import POOLS
from googlenet.inference.predictor import Predictor
from googlenet.runtime.threads import usable_cores
from googlenet.weights.sources import load_artifact

TASKS = ("predict", "features")
ACTOR_SHARE = 0.75  # of its threads' cores, what an actor requests from Ray (see above)
DECODE_CPUS = 0.25
WRITE_CPUS = 0.1
ERRORS_NAMED = 100  # failed files named in the result (all are in the output's error column)
MAX_BLOCK_ROWS = 1024  # files per block of the listing: a decode task's share


@dataclass(frozen=True)
class BatchJob:
    model: str  # any model source (weights.sources.load_artifact)
    inputs: tuple[str, ...]  # files, folders, globs, listing files (.txt, .parquet), URIs
    output: str  # a folder of Parquet parts (local, or a URI: s3://, gs://)
    task: str = "predict"  # or "features"
    backend: str = "auto"
    device: str = "auto"  # of each actor (cuda with gpus_per_actor)
    preprocess: str | None = None
    top_k: int = 5  # predict
    crops: int = 1  # predict: 1, 10 or 144 views an image
    layer: str | None = None  # features: a trunk layer instead of the pooled vector
    pool: str = "avg"  # features with a layer: avg, or none (the maps, flattened)
    batch_size: int = 32  # images per forward pass
    actors: int | None = None  # default: one per node
    threads: int | None = None  # intra-op threads per actor; default: the node's cores / its actors
    gpus_per_actor: float = 0.0
    max_image_mb: float = DEFAULT_MAX_IMAGE_MB
    rows_per_file: int = 1000  # rows per Parquet part (the last may hold fewer)
    resume: bool = False  # skip the files the output already holds
    overwrite: bool = False  # delete the output's parts first

    def recorded(self) -> dict[str, Any]:
        """What every part records, and a resume must match: what the rows mean."""
        keys = ("task", "model", "top_k", "crops") if self.task == "predict" else (
            "task", "model", "layer", "pool")
        return {key: getattr(self, key) for key in keys}


@dataclass(frozen=True)
class BatchResult:
    output: str
    images: int  # rows this run wrote, failures included
    failed: int  # rows with an error
    skipped: int  # files the output already held (resume)
    seconds: float
    actors: int
    threads: int  # per actor
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): the first few

    @property
    def images_per_second(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def run_batch(job: BatchJob, address: str | None = None, progress: bool = True,
              on_plan: Callable[[int, int], None] | None = None) -> BatchResult:
    """Run `job` on Ray: the running instance if this process has one, else the cluster at
    `address` (or $RAY_ADDRESS), else a local instance on this machine's cores, shut down after.
    `on_plan(files to do, files skipped)` once the inputs are listed. `progress`: Ray Data's
    progress bars (on stderr)."""
    check_job(job)
    artifact = load_artifact(job.model, preprocess=job.preprocess)
    check_model(job, artifact)
    start = time.perf_counter()
    done = prepare_output(job.output, job.recorded(), job.resume, job.overwrite)
    listing = list_inputs(list(job.inputs))
    todo = listing if done is None else listing.join(done, keys=list(KEY), join_type="left anti")
    if on_plan is not None:
        on_plan(todo.num_rows, listing.num_rows - todo.num_rows)
    started = connect(address)
    try:
        actors, threads = pool_size(job)
        sink = PartsSink(job.output, task_metadata(job.recorded()), job.rows_per_file)
        if todo.num_rows:
            ray.data.DataContext.get_current().enable_progress_bars = progress
            dataset(job, artifact.preprocessing, todo, actors, threads).write_datasink(
                sink, ray_remote_args={"num_cpus": WRITE_CPUS})
        return BatchResult(job.output, sink.rows, sink.failed, listing.num_rows - todo.num_rows,
                           time.perf_counter() - start, actors, threads, sink.errors)
    finally:
        if started:
            ray.shutdown()


def check_job(job: BatchJob) -> None:
    if job.task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {job.task!r}")
    if job.pool not in POOLS:
        raise ConfigError(f"pool must be one of {', '.join(POOLS)}, got {job.pool!r}")
    for name in ("batch_size", "top_k", "rows_per_file", "actors", "threads"):
        value = getattr(job, name)
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    if not job.inputs:
        raise ConfigError("no inputs given")


def check_model(job: BatchJob, artifact) -> None:
    """The errors a user can cause, raised here on the driver rather than in an actor."""
    backend = open_backend(artifact, job.backend, torch.device("cpu"), threads=1)
    if job.task == "features":
        if not isinstance(backend, TorchBackend):
            raise ModelSourceError(f"{artifact.source}: features need a PyTorch model (a checkpoint "
                                   "or weights), not an exported graph")
        if job.layer is not None:
            backend.model.layer_name(job.layer)


def connect(address: str | None) -> bool:
    """Join Ray; True when this call started a local instance (to be shut down after)."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "configure_logging": True, "logging_level": "warning"}
    if address is None:
        options["num_cpus"] = usable_cores()
    ray.init(address=address, **options)
    return address is None


def pool_size(job: BatchJob) -> tuple[int, int]:
    """(actors, threads per actor): one actor per node by default, each node's cores shared out
    between the actors it holds."""
    cpus = [node["Resources"].get("CPU", 0) for node in ray.nodes()
            if node["Alive"] and node["Resources"].get("CPU", 0) > 0]
    actors = job.actors or max(1, len(cpus))
    per_node = math.ceil(actors / max(1, len(cpus)))
    threads = job.threads or max(1, int(max(cpus, default=1)) // per_node)
    return actors, threads


def dataset(job: BatchJob, preprocessing: Preprocessing, todo: pa.Table, actors: int,
            threads: int) -> ray.data.Dataset:
    """The listing -> decoded images (CPU tasks) -> the model's rows (an actor pool)."""
    cpus = max(1.0, ray.cluster_resources().get("CPU", 1.0))
    rows = min(MAX_BLOCK_ROWS, max(job.batch_size, todo.num_rows // int(4 * cpus)))
    blocks = [todo.slice(i, rows) for i in range(0, todo.num_rows, rows)]
    model_class = Classify if job.task == "predict" else Embed
    return ray.data.from_arrow(blocks).map_batches(
        decode, fn_kwargs={"preprocessing": preprocessing, "views": job.crops if job.task == "predict"
                           else None, "max_bytes": int(job.max_image_mb * MB)},
        batch_size=job.batch_size, batch_format="pyarrow", num_cpus=DECODE_CPUS,
    ).map_batches(
        model_class, fn_constructor_kwargs={"job": asdict(job), "threads": threads},
        batch_size=job.batch_size, batch_format="numpy", compute=ActorPoolStrategy(size=actors),
        num_cpus=ACTOR_SHARE * threads, num_gpus=job.gpus_per_actor or None)


_transforms: dict[tuple[Preprocessing, int | None], Callable] = {}


def decode(batch: pa.Table, preprocessing: Preprocessing, views: int | None,
           max_bytes: int) -> pa.Table:
    """Files -> their model inputs, as `googlenet predict` reads them (`views`: its crops) or as
    `googlenet features` does (None: one center crop); a file that cannot be used gets a zero
    input and its reason in `error`. Never raises for a file: a worker survives any input."""
    torch.set_num_threads(1)  # a decode task has a fraction of a core
    key = (preprocessing, views)
    if key not in _transforms:
        _transforms[key] = (multi_crop(preprocessing, (views,)) if views is not None
                            else _eval_transform(preprocessing))
    transform = _transforms[key]
    images, errors = [], []
    for file in batch["file"].to_pylist():
        try:
            image, error = read_transformed(lambda: read_any(file, max_bytes), transform)
        except Exception as failure:  # a decoder's bug must cost one row, not the job
            image, error = None, f"cannot decode ({type(failure).__name__}: {failure})"
        images.append(None if image is None else image.numpy())
        errors.append(error)
    shape = next((image.shape for image in images if image is not None), None)
    if shape is None:  # no file of the batch could be used: any shape does
        size = preprocessing.input_size
        shape = (3, size, size) if views is None else (views, 3, size, size)
    stacked = np.stack([image if image is not None else np.zeros(shape, np.float32)
                        for image in images])
    return pa.table({**{name: batch[name] for name in KEY},
                     "image": ArrowTensorArray.from_numpy(stacked),
                     "error": pa.array(errors, pa.string())})


def _eval_transform(preprocessing: Preprocessing) -> Callable:
    from googlenet.data.transforms import eval_transform

    return eval_transform(preprocessing)


class ModelActor:
    """One model per actor, loaded as the single-process commands load it."""

    def __init__(self, job: dict[str, Any], threads: int) -> None:
        self.job = BatchJob(**job)
        torch.set_num_threads(threads)
        self.predictor = Predictor.load(self.job.model, backend=self.job.backend,
                                        device=self.job.device, preprocess=self.job.preprocess,
                                        threads=threads)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        errors = list(batch["error"])
        good = [i for i, error in enumerate(errors) if error is None]
        files = [str(file) for file in batch["file"]]
        columns = self.run(batch["image"][good], [files[i] for i in good]) if good else None
        return self.table(batch, errors, good, columns)

    def table(self, batch: dict[str, np.ndarray], errors: list, good: list[int],
              columns: dict[str, list] | None) -> pa.Table:
        n = len(errors)
        values: dict[str, list] = {name: [None] * n for name in self.columns}
        for name, column in (columns or {}).items():
            for i, value in zip(good, column):
                values[name][i] = value
        keys = {"file": pa.array([str(f) for f in batch["file"]], pa.string()),
                "size": pa.array(batch["size"], pa.int64()),
                "mtime_ns": pa.array(batch["mtime_ns"], pa.int64())}
        return pa.table({**keys, **{name: pa.array(values[name], kind)
                                    for name, kind in self.columns.items()},
                         "error": pa.array(errors, pa.string())})

    columns: dict[str, pa.DataType] = {}

    def run(self, images: np.ndarray, files: list[str]) -> dict[str, list]:
        raise NotImplementedError


class Classify(ModelActor):
    columns = {"classes": pa.list_(pa.string()), "probabilities": pa.list_(pa.float64())}

    def run(self, images: np.ndarray, files: list[str]) -> dict[str, list]:
        scores = self.predictor.crop_scores(torch.from_numpy(images), [self.job.crops])[0]
        predictions = self.predictor.top(scores, self.job.top_k, files)
        return {"classes": [p.classes for p in predictions],
                "probabilities": [p.probabilities for p in predictions]}


class Embed(ModelActor):
    columns = {"features": pa.list_(pa.float32())}

    def __init__(self, job: dict[str, Any], threads: int) -> None:
        super().__init__(job, threads)
        backend = self.predictor.backend
        assert isinstance(backend, TorchBackend)  # check_model refused the others
        self.model, self.device = backend.model, backend.device
        self.layer = None if self.job.layer is None else self.model.layer_name(self.job.layer)

    @torch.no_grad()
    def run(self, images: np.ndarray, files: list[str]) -> dict[str, list]:
        inputs = torch.from_numpy(images).to(self.device).contiguous(memory_format=torch.channels_last)
        values = layer_output(self.model, inputs, self.layer, self.job.pool).float().cpu().numpy()
        return {"features": list(values.reshape(len(values), -1))}


class PartsSink(Datasink):
    """Writes each bundle of `rows_per_file` rows as one Parquet part (whole or not at all), and
    counts the rows and failures written (and names the first few)."""

    def __init__(self, output: str, metadata: dict[bytes, bytes], rows_per_file: int) -> None:
        self.output, self.metadata, self.rows_per_file = output, metadata, rows_per_file
        self.rows = self.failed = 0
        self.errors: list[tuple[str, str]] = []

    @property
    def min_rows_per_write(self) -> int:
        return self.rows_per_file

    def write(self, blocks, ctx) -> tuple[int, int, list[tuple[str, str]]]:
        tables = [BlockAccessor.for_block(block).to_arrow() for block in blocks]
        tables = [table for table in tables if table.num_rows]
        if not tables:
            return 0, 0, []
        table = pa.concat_tables(tables).replace_schema_metadata(self.metadata)
        write_part(self.output, table)
        failed = table.filter(table["error"].is_valid())
        named = failed.slice(0, ERRORS_NAMED)
        return table.num_rows, failed.num_rows, list(zip(named["file"].to_pylist(),
                                                         named["error"].to_pylist()))

    def on_write_complete(self, write_result) -> None:
        returns = write_result.write_returns
        self.rows = sum(rows for rows, _, _ in returns)
        self.failed = sum(failed for _, failed, _ in returns)
        self.errors = sorted(error for _, _, named in returns for error in named)[:ERRORS_NAMED]
