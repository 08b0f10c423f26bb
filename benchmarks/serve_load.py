"""`googlenet serve` under load, against a hand-written FastAPI endpoint, in one run.

    python benchmarks/serve_load.py                    # writes benchmarks/results/serve_load.md

Variant `bn` at 224x224 (random weights of 1000 classes: speed does not depend on them).
Each server runs in its own process on loopback; C concurrent clients send real photographs
(CIFAR-10 test JPEGs, resized by the server like any photo) for a bounded number of
requests and time. Rows: our server on torch, ONNX Runtime fp32 and int8; and what users
write by hand, one image per request through torchvision's googlenet. Beside them, each
backend's offline batch-32 throughput and batch-1 latency, measured in the same run.
The soak then runs the fastest server with `--hostile` of its requests hostile (bad bytes,
a wrong content type, an over-long declared length, a header-claimed bomb, a client that
leaves mid-upload): no good request may fail, and resident memory is compared.

    python benchmarks/serve_load.py --soak-only --soak-seconds 60    # the soak alone, torch
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import httpx
import torch

RESULTS = Path(__file__).parent / "results" / "serve_load.md"
CIFAR = Path(__file__).resolve().parents[2] / "shared/data/cifar10/test.tar"
BASELINE = '''
import io, sys, torch, torchvision
from fastapi import FastAPI, Request
from PIL import Image
torch.set_num_threads(int(sys.argv[2]))
model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval()
T = torchvision.transforms
tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
app = FastAPI()
@app.get("/readyz")
def ready(): return {"ready": True}
@app.post("/v1/predict")
async def predict(request: Request):
    form = await request.form()
    image = Image.open(io.BytesIO(await form["files"].read())).convert("RGB")
    with torch.no_grad():
        p = model(tf(image)[None]).softmax(1)[0]
    top = p.topk(5)
    return {"predictions": [{"top": [{"class": int(i), "probability": float(v)} for v, i in zip(*top)]}]}
import uvicorn; uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="error")
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photographs(count: int) -> list[bytes]:
    with tarfile.open(CIFAR) as archive:
        members = [m for m in archive if m.isfile() and m.name.endswith(".jpg")][:count]
        return [archive.extractfile(m).read() for m in members]


def bn_artifact():
    """Variant bn with random weights of 1000 classes (speed does not depend on them)."""
    from googlenet.artifact.record import Artifact
    from googlenet.data.preprocessing import preset
    from googlenet.model.network import build_network

    torch.manual_seed(0)
    return Artifact("bn", tuple(str(i) for i in range(1000)), preset("imagenet"),
                    state_dict=build_network("bn", aux_logits=False).eval().state_dict())


def models(folder: Path) -> dict[str, Path]:
    """Our bn model as weights, fp32 ONNX and int8 ONNX."""
    from googlenet.artifact.files import save_safetensors
    from googlenet.deploy.export import export_model, generated_images
    from googlenet.deploy.quantize import quantize_onnx

    artifact = bn_artifact()
    paths = {"torch": save_safetensors(artifact, folder / "bn.safetensors")}
    paths["onnxruntime fp32"] = export_model(artifact, "onnx", folder / "bn.onnx", check_count=2).path
    paths["onnxruntime int8"] = quantize_onnx(paths["onnxruntime fp32"], folder / "bn.int8.onnx",
                                              generated_images(32, 224))
    return paths


def offline(path: Path, threads: int) -> tuple[float, float]:
    """(batch-32 images/s, batch-1 ms) of the backend alone."""
    from googlenet.inference.backends import open_backend
    from googlenet.weights.sources import load_artifact

    torch.set_num_threads(threads)
    backend = open_backend(load_artifact(path), threads=threads)
    results = []
    for batch, repeats in ((32, 4), (1, 20)):
        x = torch.randn(batch, 3, 224, 224)
        backend(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            backend(x)
            times.append(time.perf_counter() - start)
        results.append(statistics.median(times))
    return 32 / results[0], 1000 * results[1]


def start(command: list[str], port: int) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise RuntimeError(f"server did not start: {process.stderr.read().decode()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def claimed_png(width: int, height: int) -> bytes:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 4))


async def hostile(http: httpx.AsyncClient, url: str, kind: int) -> bool:
    """One hostile request; True when it is answered the 4xx it deserves (or dropped)."""
    if kind == 0:
        response = await http.post(f"{url}/v1/predict", files=[("files", ("x.jpg", b"not an image"))])
        return response.status_code == 422
    if kind == 1:
        response = await http.post(f"{url}/v1/predict", content=b"hello",
                                   headers={"content-type": "text/plain"})
        return response.status_code == 415
    if kind == 2:
        bomb = claimed_png(10**5, 10**5)
        response = await http.post(f"{url}/v1/predict", files=[("files", ("bomb.png", bomb))])
        return response.status_code == 422
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    length = 10**12 if kind == 3 else 100_000  # 3: declared over the limit; 4: leaves mid-upload
    writer.write(f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                 f"Content-Length: {length}\r\n\r\n".encode() + b"\x89PNG" + b"\x00" * 1000)
    await writer.drain()
    answered = (await reader.read(100)).startswith(b"HTTP/1.1 413") if kind == 3 else True
    writer.close()
    return answered


async def load(url: str, images: list[bytes], clients: int, requests: int, seconds: float,
               hostile_fraction: float = 0.0) -> tuple[list[float], int, list[bool]]:
    """Latencies of the answered good requests, the count of failed ones, and for each
    hostile request whether it was answered as it deserves."""
    latencies: list[float] = []
    failed = 0
    sent = 0
    refused: list[bool] = []
    deadline = time.perf_counter() + seconds
    chance = random.Random(0)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent, failed
        while sent < requests and time.perf_counter() < deadline:
            image = images[sent % len(images)]
            sent += 1
            if chance.random() < hostile_fraction:
                try:
                    refused.append(await hostile(http, url, chance.randrange(5)))
                except (httpx.HTTPError, OSError):
                    refused.append(False)
                continue
            start = time.perf_counter()
            try:
                response = await http.post(f"{url}/v1/predict", files=[("files", ("p.jpg", image))])
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                failed += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return latencies, failed, refused


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=400, help="per row, at most")
    parser.add_argument("--seconds", type=float, default=20, help="per row, at most")
    parser.add_argument("--soak-seconds", type=float, default=120)
    parser.add_argument("--hostile", type=float, default=0.1, help="fraction of the soak's requests")
    parser.add_argument("--soak-only", action="store_true", help="only the soak, on the torch server")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.soak_only:
        return soak_only(args)
    images = photographs(256)
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        paths = models(Path(tmp))
        baseline_script = Path(tmp) / "baseline.py"
        baseline_script.write_text(BASELINE)
        servers = {name: [sys.executable, "-m", "googlenet", "serve", "-m", str(path), "--threads",
                          str(args.threads)] for name, path in paths.items()}
        servers["hand-written (torchvision, one image per request)"] = [
            sys.executable, str(baseline_script)]
        for name, command in servers.items():
            hand = name.startswith("hand")
            bench = None if hand else offline(paths[name], args.threads)
            port = free_port()
            process = start(command + ([str(port), str(args.threads)] if hand else ["--port", str(port)]),
                            port)
            url = f"http://127.0.0.1:{port}"
            try:
                for clients in args.clients:
                    started = time.perf_counter()
                    latencies, failed, _ = asyncio.run(load(url, images, clients, args.requests,
                                                            args.seconds))
                    elapsed = time.perf_counter() - started
                    row = (name, clients, len(latencies) / elapsed, percentile(latencies, 0.5),
                           percentile(latencies, 0.95), percentile(latencies, 0.99), failed, bench)
                    rows.append(row)
                    print(f"{name} C={clients}: {row[2]:.1f} req/s, p50 {row[3]:.0f} ms, "
                          f"p95 {row[4]:.0f}, p99 {row[5]:.0f}, failed {failed}", flush=True)
            finally:
                stop(process)
        fastest = max((r for r in rows if r[1] == max(args.clients) and r[7]), key=lambda r: r[2])[0]
        notes.append(soak(servers[fastest], fastest, images, args))
    write(args, rows, notes)
    return 0


def soak(command: list[str], name: str, images: list[bytes], args: argparse.Namespace) -> str:
    port = free_port()
    process = start(command + ["--port", str(port)], port)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(load(url, images, 8, 10**9, 30, args.hostile))  # warm: every path, the allocator's pools
        rss = [rss_kb(process.pid)]
        answered, failed, refused = 0, 0, []
        for _ in range(4):  # memory sampled at each quarter: growth that levels off is no leak
            latencies, failures, hostile_answers = asyncio.run(
                load(url, images, 8, 10**9, args.soak_seconds / 4, args.hostile))
            answered, failed = answered + len(latencies), failed + failures
            refused += hostile_answers
            rss.append(rss_kb(process.pid))
    finally:
        stop(process)
    note = (f"Soak, {name}, C = 8 for {args.soak_seconds:.0f} s after 30 s of warm-up, "
            f"{100 * args.hostile:.0f}% hostile: {answered + failed} good requests, {failed} failed; "
            f"{len(refused)} hostile, {refused.count(False)} not refused as expected; resident memory "
            f"{' -> '.join(f'{kb / 1024:.0f}' for kb in rss)} MB "
            f"({100 * (rss[-1] - rss[0]) / rss[0]:+.1f}%); "
            f"exit status {process.returncode}.")
    print(note, flush=True)
    return note


def soak_only(args: argparse.Namespace) -> int:
    """The soak alone on the torch server (bn, 224x224): no offline rows, no baseline."""
    with tempfile.TemporaryDirectory() as tmp:
        from googlenet.artifact.files import save_safetensors

        path = save_safetensors(bn_artifact(), Path(tmp) / "bn.safetensors")
        soak([sys.executable, "-m", "googlenet", "serve", "-m", str(path), "--threads", str(args.threads)],
             "torch", photographs(256), args)
    return 0


def write(args: argparse.Namespace, rows: list, notes: list[str]) -> None:
    hand = {r[1]: r[2] for r in rows if r[0].startswith("hand")}
    lines = ["# `googlenet serve` under load", "",
             f"Command: `python benchmarks/serve_load.py` ({args.requests} requests or "
             f"{args.seconds:g} s per row). Machine: {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores; torch {torch.__version__}. Variant bn, 224x224, CIFAR-10 "
             "test JPEGs (32x32, resized by the server).", "",
             "| server | C | requests/s | vs hand-written | p50 ms | p95 ms | p99 ms | failed | "
             "offline batch-32 images/s | offline batch-1 ms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, clients, rate, p50, p95, p99, failed, bench in rows:
        ratio = rate / hand[clients] if clients in hand and hand[clients] else float("nan")
        offline_cols = f"{bench[0]:.1f} | {bench[1]:.1f}" if bench else "- | -"
        lines.append(f"| {name} | {clients} | {rate:.1f} | {ratio:.2f}x | {p50:.0f} | {p95:.0f} | "
                     f"{p99:.0f} | {failed} | {offline_cols} |")
    lines += ["", *notes, ""]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
