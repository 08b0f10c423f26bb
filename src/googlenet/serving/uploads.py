"""The images a request uploads: multipart `files` fields, or one raw image body, read within
the server's limits (never more than `max_upload_mb` held, never more than `max_images` files).
Nothing is decoded here; errors name the upload and the limit."""

from __future__ import annotations

from typing import Any, NamedTuple

from starlette.datastructures import UploadFile
from starlette.requests import Request

from googlenet.serving.errors import ClientError

MB = 1 << 20
CLOSE = {"Connection": "close"}  # the rest of the body is not read: the connection cannot go on
EXTRA_FIELDS = 8  # form fields allowed besides the files


class Upload(NamedTuple):
    name: str  # the file's name as sent, for the answer and for errors
    data: bytes


async def read_body(request: Request, limit_mb: float) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit_mb` (never read whole)."""
    limit = int(limit_mb * MB)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ClientError(413, f"upload of {int(declared) / MB:.2f} MB is over the "
                               f"{limit_mb:g} MB limit", headers=CLOSE)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ClientError(413, f"upload is over the {limit_mb:g} MB limit", headers=CLOSE)
        chunks.append(chunk)
    return b"".join(chunks)


def content_kind(request: Request) -> str:
    """The media type: multipart/form-data, or one image; 415 for anything else."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = kind.startswith("image/") or kind == "application/octet-stream"  # the bytes are sniffed
    if kind != "multipart/form-data" and not raw:
        raise ClientError(415, f"content type {kind or 'none'} is not accepted: send images as "
                               "multipart/form-data (field `files`) or one image body (image/* or "
                               "application/octet-stream)")
    return kind


async def read_uploads(request: Request, max_upload_mb: float, max_images: int) -> list[Upload]:
    """Each uploaded image, in the order sent (a raw body is one, named "image")."""
    kind = content_kind(request)
    body = await read_body(request, max_upload_mb)
    if kind != "multipart/form-data":
        return [Upload("image", body)]
    files = await form_files(request, body, max_images)
    return [Upload(file.filename or f"file{i}", await file.read()) for i, file in enumerate(files)]


async def form_files(request: Request, body: bytes, max_images: int) -> list[UploadFile]:
    """The `files` fields of a multipart body already read (Starlette's parser, replayed on it)."""
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=max_images + 1,
                                                         max_fields=max_images + EXTRA_FIELDS)
    except Exception as error:
        reason = str(getattr(error, "detail", error))
        if reason.startswith("Too many files"):
            raise too_many(max_images) from None
        if reason.startswith("Too many fields"):
            raise ClientError(413, f"more than {max_images + EXTRA_FIELDS} form fields in one "
                                   "request") from None
        raise ClientError(422, f"malformed multipart body: {reason}") from None
    files = [value for key, value in form.multi_items() if key == "files" and isinstance(value, UploadFile)]
    if len(files) > max_images:
        raise too_many(max_images)
    return files


def too_many(max_images: int) -> ClientError:
    return ClientError(413, f"more than {max_images} images in one request")
