"""Peak memory of a call, for the tests of what a gradient keeps (not timed)."""

from __future__ import annotations

import tracemalloc
from typing import Any


def peak_bytes(fn: Any, *args: Any) -> int:
    """The peak of the bytes traced during a second call of `fn(*args)` (the first
    compiles, and fills caches)."""
    fn(*args)
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
