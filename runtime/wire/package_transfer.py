"""Moving code packages: up to the head once, down from it (or from a URL) where they unpack.

The calls of the ``Packages`` service, for every side that needs them: a client (``ember job
submit --working-dir``) and the operator upload, a job's supervisor (and, with runtime_env, a
node) downloads. A package already on the head is not sent again: its name is its hash.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncGenerator
from typing import Any

from ember.runtime.wire import package_format, rpc
from ember.runtime.wire.package_format import PackageError
from ember.runtime.wire.protocol import ember_pb2 as pb

URL_TIMEOUT = 60.0


async def upload(packages: Any, data: bytes, timeout: float = 300.0, job_id: bytes = b"") -> str:
    """Put ``data`` on the head unless it is there already (``packages``: a PackagesStub);
    returns its URI. ``job_id``: the live driver's job that uses it (kept while it lives)."""
    uri = package_format.uri_of(data)
    state = await packages.HasPackage(pb.PackageRef(uri=uri, job_id=job_id), timeout=30)
    if state.present:
        return uri

    async def chunks() -> AsyncGenerator[pb.PackageChunk, None]:
        step = package_format.CHUNK
        yield pb.PackageChunk(uri=uri, size=len(data), data=data[:step])
        for start in range(step, len(data), step):
            yield pb.PackageChunk(data=data[start:start + step])

    await rpc.send_all(packages.UploadPackage(timeout=timeout), chunks())
    return uri


async def download(packages: Any, uri: str, limit: int, timeout: float = 300.0) -> bytes:
    """The package ``uri`` from the head, at most ``limit`` bytes."""
    package_format.digest_of(uri)
    parts = []
    received = 0
    async for chunk in packages.DownloadPackage(pb.PackageRef(uri=uri), timeout=timeout):
        received += len(chunk.data)
        if received > limit:
            raise PackageError(f"package {uri} is larger than {limit:,} bytes ({package_format.MAX_BYTES_ENV})")
        parts.append(chunk.data)
    data = b"".join(parts)
    if package_format.uri_of(data) != uri:
        raise PackageError(f"package {uri} arrived with other contents (its hash differs)")
    return data


async def fetch_url(url: str, limit: int) -> bytes:
    """A zip from an http(s) URL (a working_dir given as a URL), at most ``limit`` bytes."""
    if not url.startswith(("https://", "http://")):
        raise PackageError(f"{url!r} is not an http(s) URL")

    def read() -> bytes:
        request = urllib.request.Request(url, headers={"User-Agent": "ember"})
        try:
            with urllib.request.urlopen(request, timeout=URL_TIMEOUT) as response:  # noqa: S310 - http(s) only, checked above
                data = response.read(limit + 1)
        except OSError as error:
            raise PackageError(f"cannot download {url}: {error}") from None
        if len(data) > limit:
            raise PackageError(f"{url} is larger than {limit:,} bytes ({package_format.MAX_BYTES_ENV})")
        return data

    return await asyncio.to_thread(read)
