"""What a batch job reads (googlenet.batch.inputs): folders, globs, listing files and URIs, listed
with the resume key; bounded reads through pyarrow's filesystems."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from batch_helpers import write_photos

from googlenet.batch.inputs import list_inputs, read_any
from googlenet.errors import BadImage, DataError


def test_folders_globs_listing_files_and_uris_are_listed_with_size_and_mtime(tmp_path):
    photos = write_photos(tmp_path / "photos" / "a", 3) + write_photos(tmp_path / "photos" / "b", 2, 3)
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two of them\n{photos[0]}\n\n{photos[4]}\n")
    pq.write_table(pa.table({"file": [str(photos[1])]}), tmp_path / "list.parquet")
    table = list_inputs([str(tmp_path / "photos"), str(tmp_path / "photos/a/*.jpg"), str(listing),
                         str(tmp_path / "list.parquet"), f"file://{tmp_path}/photos/b",
                         str(tmp_path / "gone.jpg")])
    files = table["file"].to_pylist()
    assert files == ([str(p) for p in photos] + [str(p) for p in photos[:3]] + [str(photos[0]),
                     str(photos[4]), str(photos[1])] + [f"file://{p}" for p in photos[3:]]
                     + [str(tmp_path / "gone.jpg")])
    info = os.stat(photos[0])
    assert table.slice(0, 1).to_pylist()[0] == {"file": str(photos[0]), "size": info.st_size,
                                                 "mtime_ns": info.st_mtime_ns}
    assert table["size"].to_pylist()[-1] == -1  # missing: read later, and named in an error row


def test_empty_inputs_are_errors_naming_them(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in directory"):
        list_inputs([str(tmp_path / "empty")])
    with pytest.raises(DataError, match="no files match"):
        list_inputs([str(tmp_path / "*.jpg")])
    with pytest.raises(DataError, match="no images in"):
        list_inputs([f"file://{tmp_path}/empty"])


def test_reads_through_pyarrow_are_bounded_like_local_ones(tmp_path):
    photo = write_photos(tmp_path, 1)[0]
    assert read_any(f"file://{photo}", 10**6) == photo.read_bytes() == read_any(str(photo), 10**6)
    (tmp_path / "fake.jpg").write_bytes(b"MZ not an image")
    os.mkfifo(tmp_path / "pipe.jpg")
    for uri, reason in ((f"file://{tmp_path}/fake.jpg", "not an image"),
                        (f"file://{tmp_path}/pipe.jpg", "not a regular file"),
                        (f"file://{tmp_path}", "a directory"),
                        (f"file://{tmp_path}/gone.jpg", "No such file"),
                        (f"file://{photo}", "over the")):
        with pytest.raises(BadImage, match=reason):
            read_any(uri, 100 if "over" in reason else 10**6)
