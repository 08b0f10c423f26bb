"""Files under faults: a full disk, killed writes, two writers, hostile image files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from googlenet.data.images import BadImage, read_file
from googlenet.errors import RunInUse, StorageError
from googlenet.runtime.files import DirectoryLock, atomic_path, remove_stale_temporaries
from googlenet.training.checkpoint import load_checkpoint, save_checkpoint

MB = 1 << 20


def test_a_checkpoint_that_cannot_fit_is_refused_before_writing(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "last.pt", {"w": torch.ones(4)})
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=2 * MB))
    with pytest.raises(StorageError, match=r"no space left on device while writing .*last\.pt "
                                           r"\(needed 5\.0 MB, 2\.0 MB free\)"):
        save_checkpoint(tmp_path / "last.pt", {"w": torch.zeros(1 << 20)})  # 4 MB + 1 MB margin
    assert torch.equal(load_checkpoint(tmp_path / "last.pt")["w"], torch.ones(4))  # the old one


def test_a_write_that_runs_out_of_space_keeps_the_old_file(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "last.pt", {"w": torch.ones(4)})

    def short_write(obj, path, *args, **kwargs):  # what torch.save raises on a full disk
        Path(path).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", short_write)
    with pytest.raises(StorageError, match="no space left on device while writing"):
        save_checkpoint(tmp_path / "last.pt", {"w": torch.zeros(8)})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(tmp_path / "last.pt")["w"], torch.ones(4))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


@pytest.fixture
def small_disk(tmp_path):
    """A real 3 MB file system (tmpfs), where mounting is allowed (root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.strip() or 'not root'})")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_really_full_disk_is_a_clear_error(small_disk):
    (small_disk / "old.bin").write_bytes(b"old")
    with pytest.raises(StorageError, match="no space left on device while writing .*old.bin"):
        with atomic_path(small_disk / "old.bin") as tmp:  # no size given: the write itself fails
            tmp.write_bytes(b"x" * (5 * MB))
    assert (small_disk / "old.bin").read_bytes() == b"old"
    assert [p.name for p in small_disk.iterdir()] == ["old.bin"]


def test_stale_temporary_files_are_removed_but_not_a_live_writers(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".last.tmp-{dead}.pt"
    live = tmp_path / f".best.tmp-{os.getpid()}.pt"
    other = tmp_path / ".notes.txt"
    for path in (stale, live, other):
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def test_a_directory_has_one_writer_and_a_crashed_holder_does_not_block(tmp_path):
    with DirectoryLock(tmp_path):
        with pytest.raises(RunInUse, match=rf"in use by another process \(PID {os.getpid()}\)"):
            DirectoryLock(tmp_path).acquire()
    # A holder killed with SIGKILL leaves its .lock file, but the kernel drops its lock.
    holder = subprocess.run([sys.executable, "-c", (
        "import os, sys; sys.path.insert(0, %r)\n"
        "from googlenet.runtime.files import DirectoryLock\n"
        "DirectoryLock(%r).acquire(); os.kill(os.getpid(), 9)") % (
        str(Path(__file__).parents[2] / "src"), str(tmp_path))])
    assert holder.returncode == -9 and (tmp_path / ".lock").read_text().strip()
    with DirectoryLock(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


# --- Hostile image files: reads are bounded.


def test_only_regular_files_are_read(tmp_path):
    with pytest.raises(BadImage, match="not a regular file"):
        read_file("/dev/zero")
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    with pytest.raises(BadImage, match="not a regular file"):  # would block forever if opened
        read_file(fifo)


def test_a_file_over_the_limit_is_refused_by_its_size(tmp_path):
    sparse = tmp_path / "big.jpg"
    with open(sparse, "wb") as f:
        f.truncate(3 << 30)  # 3 GB, no blocks on disk
    with pytest.raises(BadImage, match="3072.0 MB, over the 128 MB limit"):
        read_file(sparse)
    (tmp_path / "small.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * (2 * MB))
    with pytest.raises(BadImage, match="over the 1 MB limit"):
        read_file(tmp_path / "small.png", max_bytes=MB)


def test_the_header_is_checked_before_the_rest_is_read(tmp_path):
    zeros = tmp_path / "zeros.jpg"
    zeros.write_bytes(b"\x00" * (4 * MB))
    with pytest.raises(BadImage, match="not an image"):
        read_file(zeros)
    for head in (b"\xff\xd8\xff\xe0", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP", b"P6\n", b"BM"):
        (tmp_path / "ok.img").write_bytes(head + b"\x00" * 20)
        assert read_file(tmp_path / "ok.img").startswith(head)


def test_links_that_lead_nowhere_are_named(tmp_path):
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (tmp_path / "a.jpg").symlink_to(tmp_path / "b.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "a.jpg")
    with pytest.raises(BadImage, match="dangling symbolic link"):
        read_file(tmp_path / "dangling.jpg")
    with pytest.raises(BadImage, match="symbolic link loop"):
        read_file(tmp_path / "a.jpg")


def test_predict_names_every_bad_entry_of_a_folder_and_escapes_names(digits_run, tmp_path, capsys):
    from PIL import Image

    from googlenet.cli.main import main

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (20, 20), "white").save(folder / "good.png")
    Image.new("RGB", (20, 20), "black").save(folder / "two\nlines.png")
    (folder / "dangling.jpg").symlink_to(folder / "gone.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    os.mkfifo(folder / "fifo.jpg")
    (folder / "zero.jpg").symlink_to("/dev/zero")
    code = main(["predict", str(folder), "-m", str(digits_run.run_dir), "--workers", "0"])
    out = capsys.readouterr().out
    assert code == 1 and len(out.splitlines()) == 6  # one line per file, names escaped
    assert "two\\nlines.png: " in out and "good.png: " in out
    for name, reason in (("dangling.jpg", "dangling symbolic link"), ("loop.jpg", "symbolic link loop"),
                         ("fifo.jpg", "not a regular file"), ("zero.jpg", "not a regular file")):
        assert f"{name}: error: {reason}" in out, out
    code = main(["predict", str(folder / "two\nlines.png"), "-m", str(digits_run.run_dir),
                 "--workers", "0", "--format", "json"])
    assert json.loads(capsys.readouterr().out)[0]["file"].endswith("two\nlines.png")
