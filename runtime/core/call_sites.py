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
from types import FrameType

ENV_VAR = "EMBER_RECORD_CALL_SITES"
DISABLED = "disabled"  # what listings say when the owner records no call sites (Ray's word)

PUT = "(put object)"
TASK_CALL = "(task call)"
ACTOR_CALL = "(actor call)"

_MAX_FRAMES = 64  # how far up a call site is looked for before giving up


def enabled(environ: dict[str, str] | None = None) -> bool:
    """Whether this process records call sites: ``EMBER_RECORD_CALL_SITES`` is 1/true/yes."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def _ours(module: str) -> bool:
    return module == "ember" or module.startswith("ember.")


def find(kind: str) -> str:
    """``kind | file:function:line`` of the nearest frame outside ember itself (the user's
    call; a frame of ember's own API or core is skipped), in Ray's format."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            break
        if not _ours(frame.f_globals.get("__name__", "")):
            code = frame.f_code
            return f"{kind} | {code.co_filename}:{code.co_name}:{frame.f_lineno}"
        frame = frame.f_back
    return f"{kind} | (unknown)"
