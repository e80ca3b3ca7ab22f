"""A process's own dump of its threads' Python stacks (``ember stack``), as ``faulthandler``
prints them, but served over the process's CoreWorker service instead of written to stderr.

The service answers on the I/O thread, so a task that hangs on the main thread (in a sleep, a
lock, a socket or a C call that holds no GIL) is shown where it hangs. A task that holds the
GIL forever (a C loop) keeps the I/O thread from answering too: that is what py-spy, asked for
with ``ember stack --py-spy``, is for.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from typing import TYPE_CHECKING

from ember.runtime.wire.protocol import ember_pb2 as pb

if TYPE_CHECKING:
    from ember.runtime.core.executor import Executor


def dump(kind: str, executor: Executor | None) -> pb.ProcessStacks:
    """Every thread's stack, the main thread first, with what task the process runs now."""
    reply = pb.ProcessStacks(pid=os.getpid(), kind=kind)
    threads = {thread.ident: thread for thread in threading.enumerate()}
    me = threading.get_ident()
    main = threading.main_thread().ident
    frames = sys._current_frames()
    for ident in sorted(frames, key=lambda i: (i != main, i)):
        if ident == me:
            continue  # this answer's own thread: what it does is this
        thread = threads.get(ident)
        reply.threads.add(
            name=thread.name if thread is not None else f"thread {ident}",
            ident=ident,
            daemon=bool(thread is not None and thread.daemon),
            stack="".join(traceback.format_stack(frames[ident])),
        )
    if executor is not None:
        reply.worker_id = executor.worker_id
        spec = executor.current
        if spec is not None:
            reply.task_name = spec.name
            reply.task_id = spec.task_id
            reply.task_started = executor.current_started
        host = executor.actor_host
        if host.active:
            reply.actor = f"{host.class_name} ({host.actor_id.hex()[:12]})"
    return reply
