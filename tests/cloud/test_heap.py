"""The cloud's own process keeps its loaded world out of the garbage collector's full walks."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
from devtools.cloud.seed import load_world
from devtools.cloud.server import YOUNG_COLLECTION_EVERY, settle_heap

world = load_world()
before = gc.get_freeze_count()
settle_heap()
tracked = {id(o) for o in gc.get_objects()}
print(gc.get_threshold()[0] == YOUNG_COLLECTION_EVERY, gc.get_freeze_count() > before, id(world) not in tracked)
"""


def test_settle_heap_freezes_what_is_loaded_and_collects_the_young_less_often() -> None:
    # A process of its own: the test run's collector is left as it is.
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["True", "True", "True"]
