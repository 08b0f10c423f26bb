"""The served models' steps without HTTP (googlenet.serving.api): parse the query, decode the
uploads, predict, encode; the same answers and the same refusals as the server gives."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from googlenet.inference.predictor import Predictor
from googlenet.serving.api import ExplainAPI, PredictAPI
from googlenet.serving.batcher import QueueFull
from googlenet.serving.errors import ClientError
from googlenet.serving.uploads import Upload


def answer(api, uploads: list[Upload], query: dict[str, str]) -> dict:
    """What the transport does with a request, minus HTTP."""
    async def steps() -> dict:
        decoded = await api.decode_request(uploads, api.parse_query(query))
        return api.encode_response(decoded, await api.predict(decoded))

    return asyncio.run(steps())


@pytest.fixture(scope="module")
def predictor(digits_run) -> Predictor:
    return Predictor.load(digits_run.run_dir)


@pytest.fixture
def predict_api(predictor):
    api = PredictAPI(predictor)
    yield api
    api.close()


def test_the_predict_api_answers_as_the_server_does(served, photos, predict_api):
    uploads = [Upload(p.name, p.read_bytes()) for p in photos]
    got = answer(predict_api, uploads, {"top_k": "3"})
    files = [("files", (upload.name, upload.data)) for upload in uploads]
    want = httpx.post(f"{served}/v1/predict", files=files, params={"top_k": 3}, timeout=30).json()
    assert got["model"] == want["model"] and set(got["timings"]) == set(want["timings"])
    assert [p["file"] for p in got["predictions"]] == [p["file"] for p in want["predictions"]]
    for mine, theirs in zip(got["predictions"], want["predictions"]):
        assert [t["class"] for t in mine["top"]] == [t["class"] for t in theirs["top"]]
        assert [t["probability"] for t in mine["top"]] == pytest.approx(
            [t["probability"] for t in theirs["top"]], abs=1e-6)


def test_the_steps_refuse_with_the_servers_status_and_message(predict_api):
    for query in ({"top_k": "0"}, {"top_k": "many"}):
        with pytest.raises(ClientError, match="top_k must be a positive integer") as refused:
            predict_api.parse_query(query)
        assert refused.value.status_code == 422
    with pytest.raises(ClientError, match="no images") as refused:
        answer(predict_api, [], {})
    assert refused.value.status_code == 422
    with pytest.raises(ClientError, match="notes.jpg: not an image") as refused:
        answer(predict_api, [Upload("notes.jpg", b"hello, not a picture")], {})
    assert refused.value.status_code == 422


def test_a_full_queue_is_queue_full_for_the_transport_to_answer(predictor, photos, monkeypatch):
    original = PredictAPI.forward
    monkeypatch.setattr(PredictAPI, "forward", lambda self, views: time.sleep(0.3) or original(self, views))
    api = PredictAPI(predictor, max_batch=1, max_queue=1)
    upload = Upload(photos[0].name, photos[0].read_bytes())

    async def flood() -> list:
        decoded = await api.decode_request([upload], api.parse_query({}))
        return await asyncio.gather(*(api.predict(decoded) for _ in range(4)), return_exceptions=True)

    try:
        results = asyncio.run(flood())
    finally:
        api.close()
    assert any(isinstance(r, QueueFull) for r in results)
    assert any(not isinstance(r, Exception) for r in results)


def test_the_explain_api_explains_without_http(predictor, photos):
    pytest.importorskip("captum", reason="explanations need Captum (pip install 'googlenet[explain]')")
    api = ExplainAPI(predictor)
    upload = Upload(photos[0].name, photos[0].read_bytes())
    got = answer(api, [upload], {"class": "3", "layer": "3b"})
    assert (got["file"], got["class"], got["layer"], got["method"]) == (photos[0].name, "3", "inception3b",
                                                                         "gradcam")
    assert got["overlay"].startswith("data:image/png;base64,")
    with pytest.raises(ClientError, match="method must be one of") as refused:
        api.parse_query({"method": "magic"})
    assert refused.value.status_code == 422
    with pytest.raises(ClientError, match="send one image to explain, not 2"):
        answer(api, [upload, upload], {})
