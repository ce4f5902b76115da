"""Making thousands of small objects at once (the views or table rows of every job, when the
console opens or a reload touched every job) without Python's cycle collector in the way."""

from __future__ import annotations

# The engine's pause, not a copy of it: each full pass of the collector walks every object
# alive (tens of thousands per thousand jobs), and building views or rows for 10,000 jobs set
# off several of them and so took more than twice as long. What is built is plain data with no
# reference cycles, so nothing the collector could free is kept; it runs again as usual after
# the block (also when the block raises, and not at all if it was off already).
from ..engine.collector import collector_paused

__all__ = ["BULK", "collector_paused"]

# Fewer objects than this to build are not worth the pause: the collector's young-generation
# passes are cheap, and only a long run of allocations sets off the full ones.
BULK = 500
