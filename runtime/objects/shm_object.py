"""One large object in a node's shared-memory arena: its layout, writing and reading it.

A value above the inline threshold is pickled with protocol 5 and its buffers kept out of band
(a numpy array's data is never copied into the pickle), then written once into a range of the
node's arena (``arena.py``)::

    header (64 bytes + 16 per buffer, 64-aligned)   magic, object id, pickle length, spans
    pickle bytes
    buffer 0 (64-aligned), buffer 1, ...

Readers unpickle with the buffers pointing into the arena, so a numpy array from ``get`` is a
read-only view of shared memory: no copy, whatever its size. The object id is written into the
header last; the store zeroes it when it hands a range out, so a reader that finds its own id
there knows the range holds its object, complete.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

import cloudpickle

from ember.runtime.objects.object_ref import ObjectRef, _pickling

MAGIC = b"EMBR"
ALIGN = 64
# Values whose pickle and buffers together exceed this go to the shared-memory store.
INLINE_THRESHOLD = 100 * 1024

_FIXED = struct.Struct("<4sHH20sQII")  # magic, version, flags, object id, pickle length, buffers
_SPAN = struct.Struct("<QQ")
ID_OFFSET = 8
ID_SIZE = 20


class ObjectMissing(Exception):
    """The range does not hold the object (freed, spilled and moved, or being rewritten)."""


def _align(value: int) -> int:
    return (value + ALIGN - 1) // ALIGN * ALIGN


class Serialized:
    """A value pickled for the store: in-band pickle bytes plus out-of-band buffers."""

    __slots__ = ("data", "buffers", "refs", "size", "_spans", "_start")

    def __init__(self, data: bytes, buffers: list[memoryview], refs: list[ObjectRef]) -> None:
        self.data = data
        self.buffers = buffers
        self.refs = refs
        self._start = _align(_FIXED.size + _SPAN.size * len(buffers))
        offset = _align(self._start + len(data))
        spans = []
        for buffer in buffers:
            spans.append((offset, buffer.nbytes))
            offset = _align(offset + buffer.nbytes)
        self._spans = spans
        self.size = offset

    @property
    def inline_size(self) -> int:
        return len(self.data) + sum(b.nbytes for b in self.buffers)

    def write_into(self, view: memoryview, object_id: bytes) -> None:
        """Write into ``view`` (exactly ``size`` bytes); the id goes in last."""
        _FIXED.pack_into(view, 0, MAGIC, 1, 0, bytes(ID_SIZE), len(self.data), len(self.buffers), 0)
        position = _FIXED.size
        for span in self._spans:
            _SPAN.pack_into(view, position, *span)
            position += _SPAN.size
        view[self._start : self._start + len(self.data)] = self.data
        for (offset, length), buffer in zip(self._spans, self.buffers, strict=True):
            view[offset : offset + length] = buffer  # raw(): 1-D, format "B"
        view[ID_OFFSET : ID_OFFSET + ID_SIZE] = object_id


def serialize(value: Any) -> Serialized:
    """Pickle ``value`` with its large buffers out of band; collects the refs inside it."""
    buffers: list[memoryview] = []
    previous = getattr(_pickling, "refs", None)
    found: list[ObjectRef] = []
    _pickling.refs = found

    def keep(buffer: pickle.PickleBuffer) -> bool:
        try:
            buffers.append(buffer.raw())
        except BufferError:  # not contiguous: let pickle copy it in band
            return True
        return False

    try:
        data = cloudpickle.dumps(value, protocol=5, buffer_callback=keep)
    finally:
        _pickling.refs = previous
    return Serialized(data, buffers, found)


def holds(view: memoryview, object_id: bytes) -> bool:
    """True if the range starts with a complete object of this id."""
    if len(view) < _FIXED.size:
        return False
    magic, _, _, stored_id, _, _, _ = _FIXED.unpack_from(view, 0)
    return magic == MAGIC and stored_id == object_id


def load(view: memoryview, object_id: bytes) -> Any:
    """Unpickle the object in ``view``; its buffers stay views of it (``view`` should be
    read-only, so the arrays are too)."""
    if not holds(view, object_id):
        raise ObjectMissing(object_id.hex())
    _, _, _, _, pickle_length, count, _ = _FIXED.unpack_from(view, 0)
    buffers = []
    position = _FIXED.size
    for _ in range(count):
        offset, length = _SPAN.unpack_from(view, position)
        position += _SPAN.size
        buffers.append(view[offset : offset + length])
    start = _align(_FIXED.size + _SPAN.size * count)
    return pickle.loads(view[start : start + pickle_length], buffers=buffers)
