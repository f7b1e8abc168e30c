import os
import stat

import pytest

from arvideo.errors import ArvideoError
from arvideo.files import atomic_write


def test_atomic_write_refuses_overwrite_and_keeps_old(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(ArvideoError, match="already exists"):
        with atomic_write(target):
            pass
    assert target.read_text() == "old"


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "a.txt"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_written_files_get_umask_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        with atomic_write(tmp_path / "d", is_dir=True) as tmp:
            (tmp / "x").write_text("x")
            (tmp / "private").write_text("x")
            os.chmod(tmp / "private", 0o600)  # as safetensors writes its files
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "d" / "private").stat().st_mode) == 0o644


def test_directory_overwrite_replaces_whole_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.bin").write_text("old")
    with atomic_write(target, overwrite=True, is_dir=True) as tmp:
        (tmp / "new.bin").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.bin"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
