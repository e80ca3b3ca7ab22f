"""The head's store of code packages: uploaded once by content hash, fetched by whoever unpacks.

A job's working_dir is packed where the user is (``ember.runtime.wire.package_format``) and
sent here through the head's client port, the one port a laptop behind ``kubectl
port-forward`` reaches; a job's supervisor (and, with runtime_env, a node) downloads it from
here. A package is a file ``<sha256>.zip`` in the store's directory — the head's state
directory when it has one, so a restarted head still serves what its jobs need, else the
session's.

An upload is written to a temporary file chunk by chunk (never held whole in memory), its
size checked against the limit as it grows and its hash against its name at the end, then
renamed into place: a package under its name is always whole and always what the name says.
Packages no job uses are removed by ``collect``: those left behind by a deleted job, and those
uploaded by a submission that never came, once they are older than ``UNUSED_GRACE``. A driver's
runtime_env (``init(runtime_env=...)``, a task's options) names the driver's job when it asks
for a package (``PackageRef.job_id``): the package is kept while that job lives, since a node
that joins later still has to fetch it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable

import grpc

from ember.runtime.wire import package_format
from ember.runtime.wire.package_format import PackageError
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.protocol import ember_pb2_grpc as rpc_pb

log = logging.getLogger("ember.runtime.head.packages")

UNUSED_GRACE = 600.0  # seconds an uploaded package waits for a job that uses it


class PackageStore(rpc_pb.PackagesServicer):
    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        # Packages drivers' runtime_envs use, by URI: the jobs that asked for them.
        self.used_by: dict[str, set[bytes]] = {}
        # Whether a driver's job still lives (the head's answer; none, until it says).
        self.job_alive: Callable[[bytes], bool] = lambda job_id: False

    def path_of(self, uri: str) -> str:
        return os.path.join(self.directory, package_format.digest_of(uri) + ".zip")

    def has(self, uri: str) -> bool:
        try:
            return os.path.isfile(self.path_of(uri))
        except PackageError:
            return False

    def read(self, uri: str) -> bytes:
        with open(self.path_of(uri), "rb") as f:
            return f.read()

    def put(self, data: bytes) -> str:
        """Store ``data`` (the operator's packages come whole, from a ConfigMap); its URI."""
        uri = package_format.uri_of(data)
        if not self.has(uri):
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".upload-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(temporary, self.path_of(uri))
        return uri

    def collect(self, in_use: Iterable[str], now: float | None = None) -> list[str]:
        """Remove packages no job uses and older than ``UNUSED_GRACE``; returns their URIs."""
        in_use = set(in_use) | self.used_by_live_jobs()
        keep = {package_format.digest_of(uri) for uri in in_use if package_format.URI.match(uri)}
        now = time.time() if now is None else now
        removed = []
        for name in os.listdir(self.directory):
            digest, _, suffix = name.partition(".")
            path = os.path.join(self.directory, name)
            try:
                age = now - os.stat(path).st_mtime
            except FileNotFoundError:
                continue
            if name.startswith(".upload-") and age > UNUSED_GRACE:
                os.unlink(path)  # an upload that never finished
            elif suffix == "zip" and digest not in keep and age > UNUSED_GRACE:
                os.unlink(path)
                removed.append(f"{package_format.SCHEME}{digest}.zip")
        if removed:
            log.info("removed %d package(s) no job uses: %s", len(removed), ", ".join(removed))
        return removed

    def used_by_live_jobs(self) -> set[str]:
        """The packages a live driver's runtime_env uses; forgets the jobs that ended."""
        for uri, jobs in list(self.used_by.items()):
            jobs.intersection_update({job for job in jobs if self.job_alive(job)})
            if not jobs:
                del self.used_by[uri]
        return set(self.used_by)

    # ------------------------------------------------------------------ the service

    async def HasPackage(self, request: pb.PackageRef, context: grpc.aio.ServicerContext) -> pb.PackageState:
        try:
            path = self.path_of(request.uri)
        except PackageError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            raise AssertionError("unreachable") from None
        if request.job_id:
            self.used_by.setdefault(request.uri, set()).add(request.job_id)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return pb.PackageState(present=False)
        os.utime(path)  # asked for: someone is about to use it
        return pb.PackageState(present=True, size=size)

    async def UploadPackage(
        self, request_iterator: AsyncIterator[pb.PackageChunk], context: grpc.aio.ServicerContext
    ) -> pb.PackageState:
        limit = package_format.max_bytes()
        digest = hashlib.sha256()
        uri = ""
        received = 0
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in request_iterator:
                    if not uri:
                        uri = chunk.uri
                        try:
                            package_format.digest_of(uri)
                        except PackageError as error:
                            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
                        if chunk.size > limit:
                            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, _too_big(chunk.size, limit))
                    received += len(chunk.data)
                    if received > limit:
                        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, _too_big(received, limit))
                    digest.update(chunk.data)
                    f.write(chunk.data)
            if not uri:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "an upload must name its package in its first chunk")
            if package_format.digest_of(uri) != digest.hexdigest():
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the bytes uploaded as {uri} hash to sha256 {digest.hexdigest()}: "
                    f"the upload was corrupted, or the name is wrong",
                )
            os.replace(temporary, self.path_of(uri))
            temporary = ""
            log.info("stored package %s (%d bytes)", uri, received)
            return pb.PackageState(present=True, size=received)
        finally:
            if temporary:
                try:
                    os.unlink(temporary)
                except FileNotFoundError:
                    pass

    async def DownloadPackage(
        self, request: pb.PackageRef, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.PackageChunk]:
        try:
            path = self.path_of(request.uri)
        except PackageError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            return
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"the head has no package {request.uri} (it was never uploaded, or was removed "
                f"once no job used it)",
            )
            return
        with f:
            size = os.fstat(f.fileno()).st_size
            first = True
            while True:
                data = f.read(package_format.CHUNK)
                if not data and not first:
                    return
                yield pb.PackageChunk(uri=request.uri if first else "", size=size if first else 0, data=data)
                first = False
                if not data:
                    return


def _too_big(size: int, limit: int) -> str:
    return (
        f"the package is {size:,} bytes, more than the head accepts ({limit:,} bytes, "
        f"{package_format.MAX_BYTES_ENV} on the head)"
    )
