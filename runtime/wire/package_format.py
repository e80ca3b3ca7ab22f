"""Code packages: a directory's files as one zip, named by the hash of its bytes.

A job's ``working_dir`` (and, with runtime_env, a task's modules) travels to the cluster this
way: packed where the user is, uploaded to the head once (``Packages`` in the protocol), and
fetched and unpacked where the code runs. Everyone who touches a package agrees on this module:
the client packs, the operator packs a ConfigMap's files, the head stores by URI, a supervisor
or a node unpacks.

The zip is deterministic — members in sorted order, every timestamp 1980-01-01, permissions
reduced to "executable or not" — so the same files make the same bytes, the same hash and the
same URI: a second submission of unchanged code uploads nothing. Unpacking refuses members that
would land outside the target directory (absolute paths, ``..``, links), so a hostile package
cannot write elsewhere on a node.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterable, Mapping

SCHEME = "ember-pkg://"
URI = re.compile(r"^ember-pkg://([0-9a-f]{64})\.zip$")
CHUNK = 1 << 20  # bytes per upload or download message
MAX_BYTES_ENV = "EMBER_PACKAGE_MAX_BYTES"
DEFAULT_MAX_BYTES = 100 << 20
_EPOCH = (1980, 1, 1, 0, 0, 0)


class PackageError(ValueError):
    """A package that cannot be made, named, or unpacked; the message says which and why."""


def max_bytes() -> int:
    """The largest package this process makes or accepts (``EMBER_PACKAGE_MAX_BYTES``)."""
    value = os.environ.get(MAX_BYTES_ENV, "")
    try:
        return int(value) if value else DEFAULT_MAX_BYTES
    except ValueError:
        raise PackageError(f"{MAX_BYTES_ENV}={value!r} is not a number of bytes") from None


def uri_of(data: bytes) -> str:
    return f"{SCHEME}{hashlib.sha256(data).hexdigest()}.zip"


def digest_of(uri: str) -> str:
    """The hex sha256 a package URI names; raises ``PackageError`` for anything else."""
    match = URI.match(uri)
    if match is None:
        raise PackageError(f"{uri!r} is not a package URI ({SCHEME}<sha256 of the zip>.zip)")
    return match.group(1)


def is_package_uri(value: str) -> bool:
    return value.startswith(SCHEME)


def pack_files(files: Iterable[tuple[str, bytes, bool]]) -> bytes:
    """A deterministic zip of ``(relative path, contents, executable)``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data, executable in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def pack_mapping(files: Mapping[str, str | bytes]) -> bytes:
    """A package of in-memory files (a ConfigMap's keys, say), none executable."""
    return pack_files(
        (name, value.encode() if isinstance(value, str) else value, False)
        for name, value in files.items()
    )


def extract(data: bytes, target: str, strip_single_top: bool = False) -> None:
    """Unpack a package into ``target`` (created; it must not exist yet, or be empty).

    ``strip_single_top``: a zip whose members all sit under one top-level directory (a
    repository archive downloaded from a URL) gives that directory's contents, as Ray does.
    Written into a temporary directory beside ``target`` and renamed: a half-unpacked directory
    is never mistaken for a whole one.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise PackageError(f"the package is not a zip file: {error}") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        prefix = _single_top(members) if strip_single_top else ""
        parent = os.path.dirname(os.path.abspath(target))
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(dir=parent, prefix=".unpacking-")
        try:
            for member in members:
                name = member.filename[len(prefix):]
                destination = _safe_path(staging, name)
                kind = stat.S_IFMT(member.external_attr >> 16)
                if kind and kind not in (stat.S_IFREG,):
                    raise PackageError(f"package member {member.filename!r} is not a regular file")
                os.makedirs(os.path.dirname(destination), exist_ok=True)
                with archive.open(member) as source, open(destination, "wb") as out:
                    shutil.copyfileobj(source, out)
                mode = (member.external_attr >> 16) & 0o777
                os.chmod(destination, 0o755 if mode & 0o111 else 0o644)
            if os.path.isdir(target) and not os.listdir(target):
                os.rmdir(target)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _single_top(members: list[zipfile.ZipInfo]) -> str:
    tops = {m.filename.split("/", 1)[0] for m in members}
    if len(tops) == 1 and all("/" in m.filename for m in members):
        return next(iter(tops)) + "/"
    return ""


def _safe_path(root: str, name: str) -> str:
    """Where member ``name`` goes under ``root``; refuses anything that would leave it."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        raise PackageError(f"package member {name!r} has an unsafe path")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise PackageError(f"package member {name!r} has an unsafe path")
    path = os.path.join(root, *parts)
    if os.path.commonpath([root, path]) != root:
        raise PackageError(f"package member {name!r} would be written outside the package")
    return path
