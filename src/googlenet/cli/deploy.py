"""`googlenet export`, `quantize` and `bench`: parse, call the deployment library, print."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from googlenet.cli.args import add_force, add_format, add_model, add_renamed, add_threads, positive_int
from googlenet.deploy.options import DEFAULT_OPSET, DEFAULT_TOLERANCE, FORMATS, QUANTIZE_ENGINES
from googlenet.formatting import FORMATS as OUTPUT_FORMATS


def batch_size(text: str) -> int | None:
    """'dynamic' -> None, else a fixed positive batch size."""
    return None if text == "dynamic" else positive_int(text)


def add_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="ONNX, OpenVINO IR, TorchScript or safetensors, checked against PyTorch",
        description="Export the eval-mode logits (batch norm folded; LRN as elementwise ops and an "
                    "average pool for ONNX, as one LRN operator for OpenVINO) with the "
                    "model's metadata (classes, preprocessing, provenance); the written file is "
                    "loaded back and must agree with PyTorch within --tolerance.")
    add_model(p)
    p.add_argument("--to", choices=FORMATS, default=None,
                   help="the file format to write (default: the one --output's suffix names, "
                        "else onnx)")
    p.add_argument("--output", metavar="FILE",
                   help="the file: .onnx, .xml (with its .bin), .torchscript or .safetensors "
                        "(default: beside the model's run or file, named after it; under "
                        "outputs/ for a published name)")
    add_force(p)
    p.add_argument("--batch", type=batch_size, default=None, metavar="dynamic|N",
                   help="a dynamic batch dimension (default) or a fixed batch size")
    p.add_argument("--opset", type=positive_int, default=DEFAULT_OPSET)
    p.add_argument("--check-images", type=positive_int, default=8, metavar="N")
    p.add_argument("--check-data", metavar="DATA",
                   help="images for the parity check: a data set as --data takes it (default: the "
                        "model's training data, else generated images)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="largest max abs logit difference accepted")
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from googlenet.data.config import DataConfig, missing_path
    from googlenet.deploy.export import export_model
    from googlenet.weights.sources import load_artifact

    artifact = load_artifact(args.model, preprocess=args.preprocess)
    check_data = DataConfig(path=args.check_data) if args.check_data else artifact.recorded_data()
    if check_data is not None and not args.check_data and (gone := missing_path(check_data)):
        print(f"{args.model} was trained on {gone}, which no longer exists: the parity check "
              "uses generated images (or give --check-data)")
        check_data = None
    result = export_model(artifact, args.to, args.output, batch=args.batch, opset=args.opset,
                          check_count=args.check_images, tolerance=args.tolerance,
                          check_data=check_data, overwrite=args.force)
    print(f"wrote {result.path} ({result.format})")
    print(f"parity on {result.checked_on}: max abs logit difference {result.max_abs_diff:.3g} "
          f"(tolerance {result.tolerance:g})")
    if not result.ok:
        print(f"googlenet export: error: {result.path} differs from PyTorch by "
              f"{result.max_abs_diff:.3g} > {result.tolerance:g}", file=sys.stderr)
        return 1
    return 0


def add_quantize(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "quantize", help="int8 static quantization (ONNX Runtime or OpenVINO), measured",
        description="Quantize to int8 (weights per channel, activations calibrated on real images) "
                    "and measure top-1 of int8 against fp32 on held-out validation images.")
    add_model(p)
    p.add_argument("--engine", choices=QUANTIZE_ENGINES, default="onnxruntime",
                   help="onnxruntime: QDQ .onnx (default); openvino: NNCF, an OpenVINO IR .xml")
    p.add_argument("--calibration", required=True, metavar="DATA",
                   help="digits, an image folder or archive (its training split is used), "
                        "or a folder of image files")
    p.add_argument("--images", type=positive_int, default=256, help="calibration images")
    p.add_argument("--limit", type=positive_int, default=500, metavar="N",
                   help="held-out validation images for the int8-vs-fp32 comparison")
    add_renamed(p, "--eval-images", "--limit", type=positive_int, metavar="N")
    p.add_argument("--eval-data", metavar="DATA",
                   help="validation data for the comparison (default: the model's)")
    p.add_argument("--output", required=True, metavar="FILE")
    add_force(p)
    add_format(p, OUTPUT_FORMATS)
    p.set_defaults(run=run_quantize)


def run_quantize(args: argparse.Namespace) -> int:
    from googlenet.cli.progress import Progress
    from googlenet.deploy.quantize import held_out_data, quantize_model
    from googlenet.weights.sources import load_artifact

    artifact = load_artifact(args.model, preprocess=args.preprocess)
    eval_data = held_out_data(args.eval_data) if args.eval_data else None
    progress = Progress("quantize", "img", enabled=args.format != "json")
    try:
        result = quantize_model(artifact, args.output, args.calibration, images=args.images,
                                eval_images=args.limit, eval_data=eval_data, overwrite=args.force,
                                engine=args.engine, on_progress=progress.report)
    finally:
        progress.close()
    record = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}
    record["top1_drop"] = result.top1_drop
    if args.format == "json":
        print(json.dumps(record, indent=2))
        return 0
    how = "OpenVINO IR, NNCF" if args.engine == "openvino" else "ONNX, QDQ, per-channel"
    print(f"wrote {result.path} (int8, {how})")
    print(f"calibrated on {result.calibrated_on}")
    print(f"held-out {result.eval_images} images: top-1 fp32 {100 * result.fp32_top1:.2f}%, "
          f"int8 {100 * result.int8_top1:.2f}% (drop {100 * result.top1_drop:.2f} points), "
          f"top-1 agreement {100 * result.agreement:.2f}%")
    return 0


def add_bench(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="inference and training speed against torchvision and ONNX Runtime",
        description="Throughput and latency of torchvision's googlenet (the baseline) and ours in "
                    "eager, channels_last, torch.compile, ONNX Runtime fp32 and int8, and training "
                    "steps, all measured in this run, with the fraction of the matmul ceiling.")
    add_threads(p)
    p.add_argument("--input-size", type=positive_int, help="default 224 (64 with --quick)")
    p.add_argument("--repeats", type=positive_int, help="timed repetitions (median reported)")
    p.add_argument("--warmup", type=int, help="untimed runs first")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="the torch.compile row (default: on, off with --quick; compiling takes "
                        "minutes)")
    p.add_argument("--quick", action="store_true",
                   help="small inputs, few repetitions, no torch.compile: about a minute on 2 "
                        "cores (65 s measured); the full run takes about 8 minutes")
    p.add_argument("--task", choices=("all", "inference", "training"), default="all",
                   help="the rows to time (default all)")
    p.add_argument("--json", metavar="FILE", help="write every number as JSON")
    add_format(p, OUTPUT_FORMATS[:2])
    p.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from googlenet.deploy.bench import BenchConfig, render_bench, report_dict
    from googlenet.deploy.bench import run_bench as bench

    overrides = {name: value for name, value in (
        ("threads", args.threads), ("input_size", args.input_size), ("repeats", args.repeats),
        ("warmup", args.warmup)) if value is not None}
    if args.compile is not None:
        overrides["compile"] = args.compile
    if args.task != "all":
        overrides["tasks"] = (args.task,)
    config = BenchConfig.quick(**overrides) if args.quick else BenchConfig(**overrides)
    report = bench(config, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(render_bench(report, args.format))
    if args.json:
        Path(args.json).write_text(json.dumps(report_dict(report), indent=2) + "\n")
    return 0


COMMANDS = (add_export, add_quantize, add_bench)
