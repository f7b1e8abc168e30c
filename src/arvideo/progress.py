"""Progress reporting shared by library code and the CLI.

Library code never draws bars itself: it calls `progress(iterable, desc=..., total=...)`,
which draws a tqdm bar on stderr unless progress is disabled (`--quiet`, or not a terminal
and `ARVIDEO_PROGRESS` unset).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_enabled: bool | None = None


def set_progress(enabled: bool | None) -> None:
    """Force progress bars on or off; None restores the default (on for a terminal)."""
    global _enabled
    _enabled = enabled


def progress_enabled() -> bool:
    if _enabled is not None:
        return _enabled
    if os.environ.get("ARVIDEO_PROGRESS"):
        return os.environ["ARVIDEO_PROGRESS"] not in ("0", "false", "no")
    return sys.stderr.isatty()


def progress(
    iterable: Iterable[T], desc: str = "", total: int | None = None, leave: bool = False
) -> Iterator[T]:
    """Iterate with a progress bar when progress is enabled, plainly otherwise."""
    if not progress_enabled():
        yield from iterable
        return
    yield from tqdm(iterable, desc=desc, total=total, leave=leave, dynamic_ncols=True, file=sys.stderr)
