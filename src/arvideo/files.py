"""Safe file writing: nothing half-written, nothing overwritten unless asked.

Every writer in arvideo (videos, model folders, checkpoints, shards, reports) goes through
`atomic_write`: it yields a temporary path next to the target, and only when the block
finishes without error is the temporary renamed onto the target (an atomic step on POSIX).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from arvideo.errors import ArvideoError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse to clobber an existing file unless `overwrite`; make sure the parent folder exists."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ArvideoError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")
    if not path.parent.exists():
        raise ArvideoError(f"folder {path.parent} does not exist; create it first")
    return path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, overwrite: bool = False, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary file (or folder) path; rename it onto `path` only on success.

    The temporary keeps the target's suffix so that writers choosing a format by extension
    (PyAV, Pillow) see the right one.
    """
    path = check_writable(path, overwrite)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # mkstemp/mkdtemp create private (0600/0700) entries, and so do some writers (safetensors):
        # give the result ordinary permissions.
        os.chmod(tmp, (0o777 if is_dir else 0o666) & ~_umask())
        if is_dir:
            for entry in tmp.rglob("*"):
                os.chmod(entry, (0o777 if entry.is_dir() else 0o666) & ~_umask())
        if is_dir and path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
