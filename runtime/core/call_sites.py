"""Where an object was made: the user's line that called ``.remote()`` or ``put()``.

``ember memory`` groups objects by it, so that "2 GiB held" points at a line of the program.
Finding it walks the Python stack on every call, which a tight loop of tiny tasks would feel,
so it is opt-in, as Ray's ``RAY_record_ref_creation_sites``: set ``EMBER_RECORD_CALL_SITES=1``
in the environment of the driver (and of the nodes, or a runtime_env's ``env_vars``, for the
tasks that submit tasks). Read once, when the process's owner is made; off, the task path pays
one attribute test.

The owner keeps the call site with what it owns: on the task record until the result arrives,
then on the stored value (``memory_store.StoredValue.call_site``), so it goes when the object
goes, with no table of its own to clean.
"""

from __future__ import annotations

import os
import sys
from types import CodeType, FrameType

ENV_VAR = "EMBER_RECORD_CALL_SITES"
DISABLED = "disabled"  # what listings say when the owner records no call sites (Ray's word)

PUT = "(put object)"
TASK_CALL = "(task call)"
ACTOR_CALL = "(actor call)"

_MAX_FRAMES = 64  # how far up a call site is looked for before giving up
_KEPT = 10_000  # distinct call sites remembered (code made at run time could make more)

# One string per (code, line, kind), shared by every object made there: formatting it once
# saves time, and a million objects from one line hold one string, not a million.
_known: dict[tuple[CodeType, int, str], str] = {}


def enabled(environ: dict[str, str] | None = None) -> bool:
    """Whether this process records call sites: ``EMBER_RECORD_CALL_SITES`` is 1/true/yes."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def find(kind: str) -> str:
    """``kind | file:function:line`` of the nearest frame outside ember itself (the user's
    call; a frame of ember's own API or core is skipped), in the manner of Ray's."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            break
        module = frame.f_globals.get("__name__", "")
        if module != "ember" and not module.startswith("ember."):
            key = (frame.f_code, frame.f_lineno, kind)
            site = _known.get(key)
            if site is None:
                if len(_known) >= _KEPT:
                    _known.clear()
                code = frame.f_code
                site = _known[key] = f"{kind} | {code.co_filename}:{code.co_name}:{frame.f_lineno}"
            return site
        frame = frame.f_back
    return f"{kind} | (unknown)"
