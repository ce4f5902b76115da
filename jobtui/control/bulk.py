"""Making thousands of small objects at once (the views or table rows of every job, when the
console opens or a reload touched every job) without Python's cycle collector in the way."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Fewer objects than this to build are not worth the pause: the collector's young-generation
# passes are cheap, and only a long run of allocations sets off the full ones.
BULK = 500


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the cycle collector off for the block. Each of its full passes walks every object
    alive (tens of thousands per thousand jobs); building views or rows for 10,000 jobs set
    off several of them and so took more than twice as long. What is built here is plain data
    with no reference cycles, so nothing the collector could free is kept; it runs again as
    usual afterwards (also when the block raises, and not at all if it was off already)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
