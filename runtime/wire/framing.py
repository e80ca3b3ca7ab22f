"""Frames on ember's plain sockets: a 4-byte little-endian length, then a protobuf message.

The task channel (``task_channel``) speaks them; the reader checks each frame's declared length
against a limit that the channel raises only once its peer has presented the token, so that an
unauthenticated peer cannot make a process buffer a large frame.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from google.protobuf.message import DecodeError

HEADER = struct.Struct("<I")
MAX_FRAME = (1 << 31) - 1  # a frame must fit a signed 32-bit length
# A hello (and a welcome) is a job's settings: a few hundred bytes. Until the token has been
# checked, a connection may not make the worker buffer more than this.
MAX_HELLO = 64 << 10
MAX_OWNER_ADDRESS = 256


class FrameError(Exception):
    """The peer sent something that is not a frame of ours: drop the connection."""


def encode(message: Any) -> bytes:
    data = message.SerializeToString()
    return HEADER.pack(len(data)) + data


class FrameReader:
    """Splits a byte stream into frames without copying the buffer per frame.

    ``max_frame`` may change between two frames (the task channel raises it once the hello has
    been accepted): each frame's declared length is checked against it as soon as its header
    arrives, before its bytes are buffered.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        self.append(data)
        return list(self.frames())

    def append(self, data: bytes) -> None:
        self._buffer += data

    def frames(self) -> Iterator[bytes]:
        """The complete frames buffered so far, one at a time."""
        buffer = self._buffer
        offset = 0
        try:
            while len(buffer) - offset >= 4:
                (length,) = HEADER.unpack_from(buffer, offset)
                if length > self.max_frame:
                    raise FrameError(f"frame of {length} bytes is larger than allowed ({self.max_frame})")
                end = offset + 4 + length
                if end > len(buffer):
                    break
                with memoryview(buffer) as view:
                    frame = bytes(view[offset + 4 : end])
                offset = end
                yield frame
        finally:
            if offset:
                del buffer[:offset]


def parse(message_type: Any, frame: bytes) -> Any:
    try:
        return message_type.FromString(frame)
    except DecodeError as error:
        raise FrameError(f"not a frame of type {message_type.__name__}: {error}") from None


def plain_address(address: str) -> bool:
    """Whether ``address`` can be an owner's HOST:PORT: printable, no spaces (it is logged)."""
    return (
        0 < len(address) <= MAX_OWNER_ADDRESS
        and address.isprintable()
        and not any(c.isspace() for c in address)
    )
