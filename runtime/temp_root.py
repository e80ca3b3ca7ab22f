"""The directory a user's local clusters live under: ``/tmp/ember-<uid>``, private to that user.

It holds session directories (logs, each cluster's token), the pointer to the cluster ``ember
start`` started last, and the records ``ember stop`` reads. On a shared machine another user
could create that directory first (its name is predictable) and then read or swap what lands in
it: swap the pointer, and the victim's next ``ember status`` sends the victim's token to the
attacker's address. So the root is made with mode 0700 and trusted only when it is a directory
(not a link) owned by this user; otherwise every command refuses, saying whose it is and what to
do. ``EMBER_TEMP_DIR`` names another root, checked the same way.

(One root per user also keeps ``/tmp/ember`` from existing: a script run from ``/tmp`` with an
editable install used to import that directory as the ``ember`` package.)
"""

from __future__ import annotations

import os
import stat

ENV_TEMP_DIR = "EMBER_TEMP_DIR"


class RootError(OSError):
    """The root exists but is not this user's private directory."""


def path() -> str:
    return os.environ.get(ENV_TEMP_DIR) or f"/tmp/ember-{os.getuid()}"


def ensure() -> str:
    """The root, made (mode 0700) if missing, checked to be this user's own; tightened to 0700
    if it is this user's but open to others."""
    root = path()
    try:
        os.makedirs(os.path.dirname(root) or ".", exist_ok=True)
        os.mkdir(root, 0o700)
    except FileExistsError:
        pass
    check(root)
    return root


def check(root: str) -> None:
    """Raise ``RootError`` unless ``root`` is a directory owned by this user (and make it 0700)."""
    info = os.lstat(root)
    uid = os.getuid()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise RootError(
            f"{root} is not a directory but a {'symbolic link' if stat.S_ISLNK(info.st_mode) else 'file'}: "
            f"ember keeps its sessions and tokens in a directory of your own; remove it, or set "
            f"{ENV_TEMP_DIR} to such a directory"
        )
    if info.st_uid != uid:
        raise RootError(
            f"{root} belongs to uid {info.st_uid}, not to you (uid {uid}): another user may have made "
            f"it to read or swap your clusters' tokens, so ember will not use it. Remove it (or ask "
            f"its owner to), or set {ENV_TEMP_DIR} to a directory of your own"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(root, 0o700)


def existing() -> str | None:
    """The root if it exists (checked), None if it does not: for commands that only read."""
    root = path()
    try:
        check(root)
    except FileNotFoundError:
        return None
    return root


def read_own(file: str) -> str:
    """The text of ``file``, only if it is a regular file of this user's (not a link): what is
    read from the root decides where a token goes."""
    fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            raise RootError(f"{file} is not a file of yours (uid {info.st_uid}): not read")
        return f.read()
