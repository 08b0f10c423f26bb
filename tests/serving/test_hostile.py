"""`googlenet serve` against hostile clients, on a real server on loopback: bad bodies and
lengths, image bombs, protocol abuse, slow clients, the connection cap, authentication
variants, queue overflow, and a stop with requests in flight and stalled. After each case
the same server answers a good request correctly and its memory stays within a bound."""

from __future__ import annotations

import concurrent.futures
import logging
import socket
import struct
import time
import zlib

import httpx
import psutil
import pytest
from helpers import running, running_server, slow_model

from googlenet.serving.app import ServeConfig

TIMEOUT_S, HEADER_TIMEOUT_S, MAX_CONNECTIONS = 2.0, 1.0, 24
MEMORY_BOUND_MB = 400  # the server's resident memory after a case, over what it was when ready


@pytest.fixture(scope="module")
def server(digits_run, photos):
    """A server with short timeouts and small limits, the answer it gives a good request, and
    its resident memory once ready (it runs in this process)."""
    config = ServeConfig(model=str(digits_run.run_dir), threads=1, timeout_s=TIMEOUT_S,
                         header_timeout_s=HEADER_TIMEOUT_S, max_connections=MAX_CONNECTIONS,
                         max_upload_mb=2, max_images=4)
    with running(config) as url:
        good = good_request(url, photos)
        assert good.status_code == 200, good.text
        yield url, good.json()["predictions"], psutil.Process().memory_info().rss


def good_request(url: str, photos) -> httpx.Response:
    return httpx.post(f"{url}/v1/predict", files=[("files", (photos[0].name, photos[0].read_bytes()))],
                      timeout=30)


def assert_still_serving(server, photos) -> None:
    url, predictions, rss = server
    answer = good_request(url, photos)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == predictions
    grown = (psutil.Process().memory_info().rss - rss) / (1 << 20)
    assert grown < MEMORY_BOUND_MB, f"resident memory grew by {grown:.0f} MB"


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def connect(url: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port_of(url)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def status_of(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else None


def raw(url: str, payload: bytes, timeout: float = 10) -> tuple[int | None, bytes]:
    """(status, body) of a raw request that the server answers by closing."""
    with connect(url) as sock:
        sock.sendall(payload)
        answer = read_answer(sock, timeout)
    return status_of(answer), answer.partition(b"\r\n\r\n")[2]


def png(width: int, height: int) -> bytes:
    """A black 1-bit PNG of any size: small on the wire, width x height pixels decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def claimed_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with almost no pixel data."""
    return png(1, 1).replace(struct.pack(">II", 1, 1), struct.pack(">II", width, height), 1)


def claimed_jpeg(width: int, height: int) -> bytes:
    """A JPEG start whose frame header claims width x height."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + sof + b"\x00" * 64 + b"\xff\xd9"


BOMBS = {
    "claims-100000x100000.png": lambda: [claimed_png(100_000, 100_000)],
    "claims-65000x65000.jpg": lambda: [claimed_jpeg(65_000, 65_000)],
    "deflate-20000x20000.png": lambda: [png(20_000, 20_000)],
    "wide-300000x1.png": lambda: [png(300_000, 1)],
    "tall-1x300000.png": lambda: [png(1, 300_000)],
    "wide-60000x3.png": lambda: [png(60_000, 3)],
}


@pytest.mark.parametrize("name", [
    name for name in BOMBS])
def test_a_bomb_is_refused_or_answered_in_time_within_memory(server, photos, name):
    url = server[0]
    files = [("files", (name, data)) for data in BOMBS[name]()]
    started = time.perf_counter()
    response = httpx.post(f"{url}/v1/predict", files=files, timeout=30)
    elapsed = time.perf_counter() - started
    assert response.status_code in (200, 413, 422), response.text
    assert elapsed < TIMEOUT_S + 1
    if response.status_code == 422:
        assert name in response.json()["error"]
    assert_still_serving(server, photos)


@pytest.mark.slow
def test_a_bomb_in_time_or_not_the_deadline_holds(server, photos):
    """Whatever the data path does with three 9400x9400 PNGs, the answer comes by the deadline."""
    files = [("files", (f"big{i}.png", png(9400, 9400))) for i in range(3)]
    started = time.perf_counter()
    response = httpx.post(f"{server[0]}/v1/predict", files=files, timeout=30)
    assert response.status_code in (200, 413, 422, 504), response.text
    assert time.perf_counter() - started < TIMEOUT_S + 1
    time.sleep(TIMEOUT_S)  # decoding threads that outlived the answer finish
    assert_still_serving(server, photos)


def body(length: int | str, data: bytes = b"", kind: str = "image/png", close: bool = False) -> bytes:
    closing = "Connection: close\r\n" if close else ""
    return (f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n{closing}"
            f"Content-Length: {length}\r\n\r\n").encode() + data


def get(target: str, method: str = "GET") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


PROTOCOL_ABUSE = {
    "garbage request line": (b"GARBAGE\r\n\r\n", 400),
    "header over 16 KiB": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 20_000 + b"\r\n\r\n",
                           (400, 431)),
    "length not a number": (body("abc"), 400),
    "negative length": (body("-5"), 400),
    "length and chunked": (body(3, b"3\r\nabc\r\n0\r\n\r\n").replace(  # chunked wins: 3 bytes, not an image
        b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", 1), 422),
    "bad chunk": (b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\n\r\n", 400),
    "length over the limit": (body(10**12) + b"abc", 413),
    "empty image body": (body(0, close=True), 422),
    "not an image": (body(5, b"hello", close=True), 422),
    "text body": (body(5, b"hello", "text/plain", close=True), 415),
    "no boundary": (body(5, b"hello", "multipart/form-data", close=True), 422),
    "garbage multipart": (body(5, b"hello", "multipart/form-data; boundary=xx", close=True), 422),
    "path traversal": (get("/static/../../../etc/passwd"), 404),
    "encoded traversal": (get("/static/%2e%2e/%2e%2e/etc/passwd"), 404),
    "unknown method": (get("/v1/predict", "BREW"), 405),
    "no host (HTTP/1.1)": (b"GET /healthz HTTP/1.1\r\n\r\n", 400),
}


@pytest.mark.parametrize("case", PROTOCOL_ABUSE)
def test_protocol_abuse_is_a_4xx_in_the_one_error_shape(server, photos, case):
    payload, expected = PROTOCOL_ABUSE[case]
    status, answer = raw(server[0], payload)
    assert status in (expected if isinstance(expected, tuple) else (expected,)), answer
    assert answer.startswith(b'{"error": '), answer
    assert_still_serving(server, photos)


def test_pipelined_http10_and_expect_continue_requests_are_answered(server, photos):
    status, _ = raw(server[0], b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status == 200
    with connect(server[0]) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_answer(sock).count(b"HTTP/1.1 200 OK") == 2
    image = photos[0].read_bytes()
    with connect(server[0]) as sock:
        sock.sendall(body(len(image), close=True).replace(b"Host: x", b"Host: x\r\nExpect: 100-continue"))
        assert sock.recv(100).startswith(b"HTTP/1.1 100")
        sock.sendall(image)
        assert status_of(read_answer(sock)) == 200
    assert_still_serving(server, photos)


def test_too_many_files_is_413_and_octet_stream_is_sniffed(server, photos):
    url, image = server[0], photos[0].read_bytes()
    many = httpx.post(f"{url}/v1/predict", files=[("files", (f"{i}.png", image)) for i in range(40)])
    assert many.status_code == 413 and many.json() == {"error": "more than 4 images in one request"}
    octet = httpx.post(f"{url}/v1/predict", content=image,
                       headers={"content-type": "application/octet-stream"})
    assert octet.status_code == 200 and octet.json()["predictions"][0]["top"] == server[1][0]["top"]
    for missing in ("/nope", "/v1/nope"):
        assert httpx.get(f"{url}{missing}").json() == {"error": "Not Found"}
    assert httpx.delete(f"{url}/v1/predict").json() == {"error": "Method Not Allowed"}


def test_slowloris_headers_get_408_and_others_are_served_meanwhile(server, photos):
    url = server[0]
    socks = [connect(url) for _ in range(10)]
    started = time.perf_counter()
    for sock in socks:
        sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n")
    for _ in range(3):  # a header line now and then, never the end of the header
        time.sleep(0.2)
        for sock in socks:
            sock.sendall(b"X-Slow: 1\r\n")
    assert good_request(url, photos).status_code == 200  # served during the attack
    answers = [read_answer(sock, timeout=HEADER_TIMEOUT_S + 2) for sock in socks]
    elapsed = time.perf_counter() - started
    for sock in socks:
        sock.close()
    assert all(status_of(a) == 408 for a in answers), answers[:2]
    assert b"did not arrive within 1 s" in answers[0]
    assert elapsed < HEADER_TIMEOUT_S + 2
    assert_still_serving(server, photos)


def test_idle_connections_are_closed_and_a_slow_body_gets_408(server, photos):
    url = server[0]
    idle = [connect(url) for _ in range(5)]
    started = time.perf_counter()
    assert all(read_answer(sock, timeout=HEADER_TIMEOUT_S + 2) == b"" for sock in idle)  # closed, unanswered
    assert time.perf_counter() - started < HEADER_TIMEOUT_S + 2
    for sock in idle:
        sock.close()
    with connect(url) as stalled, connect(url) as trickle:
        started = time.perf_counter()
        stalled.sendall(body(1000, b"abc"))
        trickle.sendall(body(1000, b"\x89PNG"))
        while time.perf_counter() - started < TIMEOUT_S - 0.3:
            trickle.sendall(b"\x00")
            time.sleep(0.2)
        answers = [read_answer(sock, timeout=3) for sock in (stalled, trickle)]
    assert [status_of(a) for a in answers] == [408, 408], answers
    assert b"not received within 2 s" in answers[0]
    assert time.perf_counter() - started < TIMEOUT_S + 2
    assert_still_serving(server, photos)


def test_past_the_connection_cap_a_new_connection_gets_503(server, photos):
    url = server[0]
    held = [connect(url) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.1)
        with connect(url) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = read_answer(sock, timeout=3)
        assert status_of(answer) == 503 and b"open connections" in answer
        assert b"\r\nretry-after: 1\r\n" in answer.lower()  # as a full queue's 503
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert_still_serving(server, photos)


def test_a_client_that_leaves_mid_upload_logs_nothing(server, photos):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "googlenet.serve")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        for _ in range(5):
            with connect(server[0]) as sock:
                sock.sendall(body(100_000, b"\x89PNG" + b"\x00" * 500))
        image = photos[0].read_bytes()
        with connect(server[0]) as sock:  # gone while its request waits for the model
            sock.sendall(body(len(image), image))
        time.sleep(0.5)
        assert_still_serving(server, photos)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert [r for r in records if r.levelno >= logging.WARNING] == []


def test_a_client_gone_while_its_request_waits_is_counted_and_not_answered(digits_run, photos,
                                                                            monkeypatch):
    slow_model(monkeypatch, 1.0)
    image = photos[0].read_bytes()
    with running(ServeConfig(model=str(digits_run.run_dir), threads=1)) as url:
        with connect(url) as sock:
            sock.sendall(body(len(image), image))
            time.sleep(0.3)  # received and decoded: waiting for the model
            sock.shutdown(socket.SHUT_WR)  # gone (it can still read what the server sends)
            assert read_answer(sock, timeout=3) == b""  # closed, unanswered
        counted = 'googlenet_requests_total{status="disconnected"} 1.0'
        for _ in range(30):  # the request sees that its client left at its next look (0.25 s)
            metrics = httpx.get(f"{url}/metrics").text
            if counted in metrics:
                break
            time.sleep(0.1)
    assert counted in metrics, metrics
    assert 'status="499"' not in metrics


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer wrong", "bearer s3cret", "Bearer s3cre", "Bearer s3cretX",
    "Bearer  s3cret", "Basic czNjcmV0", "Token s3cret", "s3cret", "Bearer " + "s" * 10_000])
def test_an_api_key_variant_is_401_in_the_one_error_shape(keyed, photos, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.post(f"{keyed}/v1/predict", files=[("files", (photos[0].name, photos[0].read_bytes()))],
                          headers=headers)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert "API key" in response.json()["error"]
    good = httpx.post(f"{keyed}/v1/predict", files=[("files", (photos[0].name, photos[0].read_bytes()))],
                      headers={"Authorization": "Bearer s3cret"}, timeout=30)
    assert good.status_code == 200


@pytest.fixture(scope="module")
def keyed(digits_run):
    with running(ServeConfig(model=str(digits_run.run_dir), threads=1, api_key="s3cret")) as url:
        yield url


def test_a_queue_flood_is_answered_200_or_503_and_the_server_recovers(digits_run, photos, monkeypatch):
    slow_model(monkeypatch, 0.2)
    config = ServeConfig(model=str(digits_run.run_dir), threads=1, max_batch=1, max_queue=2)
    with running(config) as url:
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(lambda _: good_request(url, photos).status_code, range(24)))
        assert set(codes) == {200, 503}, codes
        time.sleep(1)
        assert good_request(url, photos).status_code == 200


def test_a_stop_finishes_what_is_in_flight_and_drops_stalled_uploads(digits_run, photos, monkeypatch):
    """What SIGTERM does (uvicorn's graceful stop): an answer being computed is sent, an upload
    still arriving is answered 503 at once, and the server stops well within --stop-timeout-s."""
    slow_model(monkeypatch, 1.0)
    config = ServeConfig(model=str(digits_run.run_dir), threads=1, stop_timeout_s=8)
    with running_server(config) as (url, uvicorn_server):
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(good_request, url, photos)
            stalled = connect(url)
            stalled.sendall(body(1000, b"abc"))
            time.sleep(0.3)
            started = time.perf_counter()
            uvicorn_server.should_exit = True
            dropped = read_answer(stalled, timeout=5)
            stalled.close()
            assert in_flight.result().status_code == 200
    assert time.perf_counter() - started < 5  # the server's thread has ended (running_server joins it)
    assert status_of(dropped) == 503 and b"stopping" in dropped
