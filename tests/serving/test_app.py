"""`googlenet serve`: the API against `googlenet predict`, its endpoints, batching, limits,
bad input, and authentication, on a real HTTP server."""

from __future__ import annotations

import concurrent.futures
import io
import time

import httpx
import pytest
from helpers import running, slow_model
from PIL import Image

from googlenet.inference.predictor import Predictor
from googlenet.serving.app import ServeConfig


def post(url: str, files, **kwargs) -> httpx.Response:
    kwargs.setdefault("timeout", 30)
    return httpx.post(f"{url}/v1/predict", files=[("files", (p.name, p.read_bytes())) for p in files],
                      **kwargs)


def test_predictions_are_those_of_googlenet_predict(served, photos, digits_run):
    response = post(served, photos, params={"top_k": 3})
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = Predictor.load(digits_run.run_dir).predict_files(photos, top_k=3)
    assert [p["file"] for p in answer["predictions"]] == [p.name for p in photos]
    for got, want in zip(answer["predictions"], expected):
        assert [t["class"] for t in got["top"]] == want.classes
        assert [t["probability"] for t in got["top"]] == pytest.approx(want.probabilities, abs=1e-5)
    assert answer["model"] == "run" and answer["timings"]["total_ms"] > 0
    raw = httpx.post(f"{served}/v1/predict", content=photos[0].read_bytes(),
                     headers={"content-type": "image/png"}, timeout=30)
    assert raw.status_code == 200 and raw.json()["predictions"][0]["top"][0]["class"] == (
        answer["predictions"][0]["top"][0]["class"])


def test_model_health_readiness_metrics_and_docs(served, photos):
    model = httpx.get(f"{served}/v1/model").json()
    assert model["variant"] == "bn" and model["num_classes"] == 10 and model["backend"] == "torch"
    assert model["preprocessing"]["input_size"] == 32 and len(model["sha256"]) == 64
    assert httpx.get(f"{served}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{served}/readyz").json() == {"ready": True}
    post(served, photos[:1])
    metrics = httpx.get(f"{served}/metrics").text
    for name in ('googlenet_requests_total{status="200"}', "googlenet_request_seconds_bucket",
                 "googlenet_batch_images_bucket", "googlenet_queue_depth"):
        assert name in metrics, name
    assert "/v1/predict" in httpx.get(f"{served}/openapi.json").json()["paths"]
    assert httpx.get(f"{served}/docs").status_code == 200
    page = httpx.get(f"{served}/")
    assert page.status_code == 200 and "/static/app.js" in page.text and "http" not in page.text.split(
        "<footer")[0].replace("http-equiv", "")  # no CDN, no external fonts
    assert httpx.get(f"{served}/static/app.js").status_code == 200


def broken_files(photos) -> dict[str, tuple[bytes, str]]:
    good = photos[3].read_bytes()  # a JPEG
    return {"truncated.jpg": (good[:300], "corrupt or truncated"), "empty.jpg": (b"", "empty file"),
            "notes.jpg": (b"hello, not a picture", "not an image"),
            "fake.png": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "not an image")}


@pytest.mark.parametrize("name", ["truncated.jpg", "empty.jpg", "notes.jpg", "fake.png"])
def test_a_bad_file_is_a_422_naming_it_and_the_server_goes_on(served, photos, name):
    data, reason = broken_files(photos)[name]
    response = httpx.post(f"{served}/v1/predict", files=[("files", (name, data))], timeout=30)
    assert response.status_code == 422 and name in response.json()["error"]
    assert reason in response.json()["error"]
    assert post(served, photos[:1]).status_code == 200


def test_a_decompression_bomb_is_refused(served, photos, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # the server runs in this process
    big = io.BytesIO()
    Image.new("RGB", (64, 64)).save(big, "PNG")
    response = httpx.post(f"{served}/v1/predict", files=[("files", ("bomb.png", big.getvalue()))])
    assert response.status_code == 422 and "decompression bomb" in response.json()["error"]
    monkeypatch.undo()
    assert post(served, photos[:1]).status_code == 200


def test_limits_and_content_types(digits_run, photos):
    config = ServeConfig(model=str(digits_run.run_dir), threads=1, max_upload_mb=0.01, max_images=2)
    with running(config) as url:
        big = b"\xff\xd8\xff" + b"\x00" * 20_000
        response = httpx.post(f"{url}/v1/predict", files=[("files", ("big.jpg", big))])
        assert response.status_code == 413 and "over the 0.01 MB limit" in response.json()["error"]
        chunked = httpx.post(f"{url}/v1/predict", content=iter([big[:8000], big[8000:]]),
                             headers={"content-type": "image/jpeg"})  # no Content-Length
        assert chunked.status_code == 413
        many = post(url, [photos[0]] * 3)
        assert many.status_code == 413 and "more than 2 images" in many.json()["error"]
        text = httpx.post(f"{url}/v1/predict", content=b"hello", headers={"content-type": "text/plain"})
        assert text.status_code == 415 and "text/plain" in text.json()["error"]
        assert httpx.post(f"{url}/v1/predict?top_k=0", files=[("files", ("a.png", photos[0].read_bytes()))]
                          ).status_code == 422
        assert post(url, photos[:1]).status_code == 200  # still serving


def test_an_api_key_is_required_and_compared(digits_run, photos):
    with running(ServeConfig(model=str(digits_run.run_dir), threads=1, api_key="s3cret")) as url:
        assert post(url, photos[:1]).status_code == 401
        assert post(url, photos[:1], headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert post(url, photos[:1], headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(f"{url}/v1/model").status_code == 401
        assert httpx.get(f"{url}/healthz").status_code == 200  # probes stay open


def test_requests_that_arrive_together_run_as_one_batch(digits_run, photos, monkeypatch):
    slow_model(monkeypatch, 0.3)  # while one batch runs, the next requests queue up
    with running(ServeConfig(model=str(digits_run.run_dir), threads=1, max_batch=32)) as url:
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(lambda _: post(url, photos[:1]).status_code, range(12)))
        assert codes == [200] * 12
        metrics = httpx.get(f"{url}/metrics").text
    batches = float(next(line.split()[-1] for line in metrics.splitlines()
                         if line.startswith("googlenet_batch_images_count")))
    assert batches < 12 - 1  # 12 requests (plus the warm-up) in fewer forward passes


def test_a_full_queue_answers_503_and_a_slow_answer_504(digits_run, photos, monkeypatch):
    slow_model(monkeypatch, 0.5)
    config = ServeConfig(model=str(digits_run.run_dir), threads=1, max_batch=1, max_queue=1)
    with running(config) as url:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda _: post(url, photos[:1]), range(8)))
        codes = [r.status_code for r in responses]
        assert 503 in codes and 200 in codes, codes
        busy = next(r for r in responses if r.status_code == 503)
        assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]
        time.sleep(1)
        assert post(url, photos[:1]).status_code == 200
    with running(ServeConfig(model=str(digits_run.run_dir), threads=1, timeout_s=0.2)) as url:
        late = post(url, photos[:1])
        assert late.status_code == 504 and "no answer within 0.2 s" in late.json()["error"]


def test_an_idle_server_does_not_wait_for_a_batch_to_fill(digits_run, photos):
    config = ServeConfig(model=str(digits_run.run_dir), threads=1, max_wait_ms=60_000)
    with running(config) as url:
        response = post(url, photos[:1], timeout=20)  # would take 60 s if it waited
        assert response.status_code == 200


def test_the_command_serves_and_workers_share_the_cores(digits_run, photos, monkeypatch):
    import os
    import socket
    import subprocess
    import sys

    from googlenet.cli.serve import threads_per_worker
    from googlenet.serving.app import CONFIG_VARIABLE, app_from_environment

    assert threads_per_worker(2, None) == max(1, (os.cpu_count() or 1) // 2)
    assert threads_per_worker(4, 3) == 3
    monkeypatch.setenv(CONFIG_VARIABLE, ServeConfig(model="m", max_batch=4).to_json())
    assert app_from_environment().title == "googlenet"  # what each of --workers N builds
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "googlenet", "serve", "-m", str(digits_run.run_dir),
                                "--port", str(port), "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert post(url, photos[:1]).status_code == 200
        stalled = socket.create_connection(("127.0.0.1", port))  # a half-sent upload, then SIGTERM
        stalled.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                        b"Content-Length: 1000\r\n\r\nabc")
        time.sleep(0.2)
    finally:
        process.terminate()
        started = time.perf_counter()
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0 and time.perf_counter() - started < 10, err  # not held by the upload
    assert b"stopping" in stalled.recv(1000) and "Traceback" not in err
    stalled.close()
    assert f"serving {digits_run.run_dir} on http://127.0.0.1:{port}" in out


def test_explain_returns_the_overlay_of_the_top_class(served, photos):
    pytest.importorskip("captum", reason="explanations need Captum (pip install 'googlenet[explain]')")
    import base64

    top = post(served, photos[:1]).json()["predictions"][0]["top"][0]["class"]
    response = httpx.post(f"{served}/v1/explain", files=[("files", (photos[0].name, photos[0].read_bytes()))],
                          timeout=60)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["class"] == top and answer["layer"] == "inception4e" and answer["method"] == "gradcam"
    png = base64.b64decode(answer["overlay"].removeprefix("data:image/png;base64,"))
    assert Image.open(io.BytesIO(png)).size == (320, 320)  # the 32x32 view, enlarged
    named = httpx.post(f"{served}/v1/explain", params={"class": "3", "layer": "3b", "method": "gradcam++"},
                       files=[("files", (photos[0].name, photos[0].read_bytes()))], timeout=60).json()
    assert (named["class"], named["layer"], named["method"]) == ("3", "inception3b", "gradcam++")
    two = httpx.post(f"{served}/v1/explain", files=[("files", (p.name, p.read_bytes())) for p in photos[:2]])
    assert two.status_code == 422 and two.json()["error"] == "send one image to explain, not 2"
    bad = httpx.post(f"{served}/v1/explain", params={"layer": "9z"},
                     files=[("files", (photos[0].name, photos[0].read_bytes()))], timeout=60)
    assert bad.status_code == 422 and "no layer '9z'" in bad.json()["error"]
