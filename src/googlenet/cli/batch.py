"""`googlenet batch predict|features`: a collection of images through a model on Ray Data,
written as Parquet parts; parse, call googlenet.batch, print."""

from __future__ import annotations

import argparse
import sys

from googlenet.arch.table import CROP_SCHEMES
from googlenet.cli.args import add_backend, add_device, add_force, add_model, positive_int
from googlenet.data.config import DEFAULT_MAX_IMAGE_MB
from googlenet.inference.options import POOLS

INPUTS_HELP = ("image files, folders, glob patterns ('photos/**/*.jpg'), listing files (.txt: a "
               "path a line; .parquet: a 'file' column), or URIs (s3://bucket/photos/, gs://...)")
ERRORS_SHOWN = 10


def add_batch(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "batch", help="predict or embed a whole collection on Ray Data (one machine or a cluster)",
        description="The answers of `googlenet predict` or `googlenet features` for every image "
                    "of a collection, on Ray Data: decoding on CPU tasks, the model on a pool of "
                    "actors, Parquet parts written as the job goes. Runs on a local Ray instance "
                    "unless --address (or RAY_ADDRESS) names a cluster.")
    actions = p.add_subparsers(dest="action", required=True, metavar="TASK")
    predict = actions.add_parser("predict", help="top-k classes and probabilities of every image")
    add_common(predict)
    add_backend(predict)
    predict.add_argument("--top-k", type=positive_int, default=5)
    predict.add_argument("--crops", type=int, choices=CROP_SCHEMES, default=1)
    predict.set_defaults(run=run_batch)
    features = actions.add_parser("features", help="embeddings (the pooled 1024-d vector, or a "
                                  "trunk layer's) of every image")
    add_common(features)
    features.add_argument("--layer", help="a trunk layer instead of the pooled features (e.g. 4e)")
    features.add_argument("--pool", choices=POOLS, default="avg",
                          help="with --layer: average over space, or keep the C x H x W maps "
                          "(flattened in the row)")
    features.set_defaults(run=run_batch, backend="torch")


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="INPUT", help=INPUTS_HELP)
    add_model(p)
    p.add_argument("--output", required=True, metavar="DIR",
                   help="a folder (or s3://, gs:// URI) of Parquet parts, one row per input file")
    p.add_argument("--resume", action="store_true",
                   help="continue into an output that holds parts: skip the files already written "
                   "(same path, size and modification time)")
    add_force(p)
    p.add_argument("--address", help="the Ray cluster to join (default: $RAY_ADDRESS, else a local "
                   "Ray instance on this machine's cores)")
    p.add_argument("--actors", type=positive_int, help="model replicas (default: one per node)")
    p.add_argument("--threads", type=positive_int, dest="actor_threads",
                   help="intra-op threads per actor (default: a node's cores over its actors)")
    p.add_argument("--gpus-per-actor", type=float, default=0.0, help="GPUs each actor holds")
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per forward pass")
    add_device(p)
    p.add_argument("--max-image-mb", type=float, default=DEFAULT_MAX_IMAGE_MB,
                   help="image files larger than this are refused unread (MB)")
    p.add_argument("--rows-per-file", type=positive_int, default=1000,
                   help="rows per Parquet part: the unit a killed job loses")


def run_batch(args: argparse.Namespace) -> int:
    from googlenet.batch.job import BatchJob
    from googlenet.batch.job import run_batch as run

    job = BatchJob(model=args.model, inputs=tuple(args.images), output=args.output,
                   task=args.action, backend=args.backend, device=args.device,
                   preprocess=args.preprocess, top_k=getattr(args, "top_k", 5),
                   crops=getattr(args, "crops", 1), layer=getattr(args, "layer", None),
                   pool=getattr(args, "pool", "avg"), batch_size=args.batch_size,
                   actors=args.actors, threads=args.actor_threads,
                   gpus_per_actor=args.gpus_per_actor, max_image_mb=args.max_image_mb,
                   rows_per_file=args.rows_per_file, resume=args.resume, overwrite=args.force)
    result = run(job, address=args.address, on_plan=lambda todo, skipped: print(
        f"batch {args.action}: {todo:,} images to do" + (
            f", {skipped:,} already in {args.output}" if skipped else ""), file=sys.stderr))
    for file, error in result.errors[:ERRORS_SHOWN]:
        print(f"{file}: error: {error}", file=sys.stderr)
    if result.failed > ERRORS_SHOWN:
        print(f"... and {result.failed - ERRORS_SHOWN:,} more: the rows whose 'error' is set",
              file=sys.stderr)
    print(f"wrote {args.output}: {result.images:,} images, {result.failed:,} failed, "
          f"{result.skipped:,} already there; {result.seconds:.1f} s, "
          f"{result.images_per_second:.1f} images/s ({result.actors} actors x "
          f"{result.threads} threads)")
    return 1 if result.failed else 0


COMMANDS = (add_batch,)
