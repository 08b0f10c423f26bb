"""`googlenet serve`: the HTTP API and web page for a model (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse
import os
import signal

from googlenet.cli.args import add_backend, add_device, add_model, add_threads, positive_int

API_KEY_VARIABLE = "GOOGLENET_API_KEY"  # --api-key's default: a key in the arguments shows in `ps`

LIMITS = (  # ServeConfig's field, its type, what it bounds
    ("max_batch", positive_int, "images per forward pass at most"),
    ("max_wait_ms", float, "how long a batch waits for requests still being decoded (an idle server "
                           "never waits)"),
    ("max_queue", positive_int, "requests waiting for the model; more are answered 503 at once"),
    ("timeout_s", float, "a request is answered within this of its first byte (upload, decode, queue "
                         "and model): 408 if its body had not all arrived, else 504"),
    ("header_timeout_s", float, "a connection must send a request's header within this (else 408, or "
                                "closed when it sent nothing)"),
    ("max_connections", positive_int, "open connections at most; more are answered 503 at once"),
    ("stop_timeout_s", float, "on SIGTERM, requests in flight get this long to finish (uploads still "
                              "arriving are answered 503 at once); then the process exits 0"),
    ("max_upload_mb", float, "larger request bodies are answered 413 unread"),
    ("max_images", positive_int, "images per request at most"),
)
DEFAULTS = {"max_batch": 32, "max_wait_ms": 5.0, "max_queue": 256, "timeout_s": 30.0,
            "max_upload_mb": 20.0, "max_images": 32, "header_timeout_s": 10.0, "max_connections": 512,
            "stop_timeout_s": 10.0}


def add_serve(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="an HTTP API and a web page for a model, with dynamic batching",
        description="Serve a model: POST /v1/predict, GET /v1/model, /healthz, /readyz, /metrics, "
                    "the OpenAPI page at /docs and a web page at /. Requests that arrive close "
                    "together run as one batch.")
    add_model(p)
    add_backend(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=positive_int, default=1,
                   help="processes, each with its own model and a fair share of the cores")
    add_threads(p)
    add_device(p)
    for name, kind, help_text in LIMITS:
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=DEFAULTS[name], help=help_text)
    p.add_argument("--api-key", default=os.environ.get(API_KEY_VARIABLE),
                   help=f"require `Authorization: Bearer KEY` (default: ${API_KEY_VARIABLE}, else none)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow browser requests from ORIGIN (repeatable; default: none)")
    p.set_defaults(run=run_serve)


def threads_per_worker(workers: int, threads: int | None, measured: bool = False) -> int:
    """Never more threads in all than cores: N processes share the free cores (measured at
    start, unless --threads was given)."""
    if threads and not measured:
        return threads
    return max(1, (threads or os.cpu_count() or 1) // workers)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from googlenet.serving.app import CONFIG_VARIABLE, ServeConfig, create_app, uvicorn_options
    from googlenet.weights.sources import load_artifact

    # the workers load the model once they start, where a bad source could only be a traceback
    # in uvicorn's log: it is read here first, so that it is refused before the port is bound
    load_artifact(args.model, preprocess=args.preprocess)

    threads = threads_per_worker(args.workers, args.threads, getattr(args, "threads_measured", False))
    config = ServeConfig(
        model=args.model, backend=args.backend, device=args.device, preprocess=args.preprocess,
        threads=threads, api_key=args.api_key, cors_origins=tuple(args.cors_origin),
        **{name: getattr(args, name) for name, _, _ in LIMITS})
    print(f"serving {args.model} on http://{args.host}:{args.port} ({args.workers} worker(s), "
          f"{config.threads} thread(s) each); the page at /, the API at /docs", flush=True)
    options = {"host": args.host, "port": args.port, "log_level": "warning", **uvicorn_options(config)}
    # uvicorn stops gracefully on SIGTERM, then raises the signal again to its previous handler:
    # a stop asked for is a success, so that handler exits 0
    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        if args.workers == 1:
            uvicorn.run(create_app(config), **options)
        else:
            os.environ[CONFIG_VARIABLE] = config.to_json()
            uvicorn.run("googlenet.serving.app:app_from_environment", factory=True, workers=args.workers,
                        **options)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


COMMANDS = (add_serve,)
