"""A local working_dir packed for the cluster: which files go, and a clear limit.

``ember job submit --working-dir .`` (and ``runtime_env={"working_dir": ...}``) sends a
directory's files to the cluster as one package (``ember.runtime.wire.package_format``). What is
left out, in gitignore's words: the runtime_env's ``excludes``, every ``.gitignore`` in the tree
(each for its own directory, as git reads them), and always ``.git/`` and ``__pycache__/``. A
package larger than ``EMBER_PACKAGE_MAX_BYTES`` (100 MiB by default) is refused before anything
is sent, naming the limit and the biggest files, so the user knows what to exclude.

A ``.zip`` file is sent as it is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ember.runtime.wire import package_format
from ember.runtime.wire.package_format import PackageError

ALWAYS_EXCLUDED = (".git/", "__pycache__/")
SHOWN_BIGGEST = 5


@dataclass(frozen=True)
class Rule:
    """One gitignore line, compiled: ``base`` is the directory (relative, "" for the root) of
    the file it came from; it matches paths below it."""

    base: str
    regex: re.Pattern[str]
    negated: bool
    directories_only: bool

    def matches(self, path: str, is_dir: bool) -> bool:
        if self.directories_only and not is_dir:
            return False
        if self.base:
            if not path.startswith(self.base + "/"):
                return False
            path = path[len(self.base) + 1:]
        return self.regex.fullmatch(path) is not None


def compile_rules(lines: Iterable[str], base: str = "") -> list[Rule]:
    """gitignore patterns: ``#`` comments, ``!`` to re-include, a trailing ``/`` for
    directories only, a ``/`` at the start or inside to anchor at ``base``, ``*``, ``?``,
    ``[...]`` and ``**``."""
    rules = []
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.endswith("\\ "):
            line = line.rstrip(" ")  # trailing spaces go, unless escaped
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        line = line.removeprefix("\\")
        directories_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        body = _translate(line)
        regex = body if anchored else f"(?:.*/)?{body}"
        rules.append(Rule(base, re.compile(regex), negated, directories_only))
    return rules


def _translate(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1:end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def excluded(path: str, is_dir: bool, rules: list[Rule]) -> bool:
    """The last rule that matches decides, as in git."""
    verdict = False
    for rule in rules:
        if rule.matches(path, is_dir):
            verdict = not rule.negated
    return verdict


def list_files(root: str, excludes: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``(relative path, absolute path)`` of every file that goes, sorted."""
    rules = compile_rules(ALWAYS_EXCLUDED) + compile_rules(excludes)
    found = []
    for directory, dirs, files in os.walk(root):
        relative_dir = os.path.relpath(directory, root).replace(os.sep, "/")
        relative_dir = "" if relative_dir == "." else relative_dir
        ignore_file = os.path.join(directory, ".gitignore")
        if os.path.isfile(ignore_file):
            with open(ignore_file, errors="replace") as f:
                rules += compile_rules(f.readlines(), relative_dir)
        keep = []
        for name in sorted(dirs):
            path = f"{relative_dir}/{name}" if relative_dir else name
            if not excluded(path, True, rules) and not os.path.islink(os.path.join(directory, name)):
                keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            path = f"{relative_dir}/{name}" if relative_dir else name
            if not excluded(path, False, rules):
                found.append((path, os.path.join(directory, name)))
    return sorted(found)


def pack(path: str, excludes: Iterable[str] = (), prefix: str = "", what: str = "working_dir") -> bytes:
    """The package of a local directory (or the bytes of a local ``.zip``), or ``PackageError``
    saying what is wrong: not there, or too big (and which files are the biggest).

    ``prefix`` goes before every member's path (a py_module is packed under its own name);
    ``what`` names the field in errors."""
    limit = package_format.max_bytes()
    if os.path.isfile(path) and path.endswith(".zip"):
        size = os.path.getsize(path)
        if size > limit:
            raise PackageError(f"{path} is {_size(size)}, more than a package may hold ({_size(limit)}, "
                               f"{package_format.MAX_BYTES_ENV})")
        with open(path, "rb") as f:
            return f.read()
    if not os.path.isdir(path):
        raise PackageError(f"{what} {path!r} is neither a directory nor a .zip file")
    files = list_files(path, excludes)
    sizes = []
    for relative, absolute in files:
        try:
            sizes.append((os.path.getsize(absolute), relative))
        except OSError as error:
            raise PackageError(f"{what} {path}: cannot read {relative}: {error}") from None
    total = sum(size for size, _ in sizes)
    if total > limit:
        biggest = ", ".join(f"{name} ({_size(size)})" for size, name in sorted(sizes, reverse=True)[:SHOWN_BIGGEST])
        raise PackageError(
            f"{what} {path} holds {_size(total)} in {len(files)} files, more than a package may "
            f"hold ({_size(limit)}, {package_format.MAX_BYTES_ENV}); the biggest: {biggest}. Leave "
            f"files out with runtime_env excludes or a .gitignore"
        )
    contents = []
    for relative, absolute in files:
        with open(absolute, "rb") as f:
            data = f.read()
        contents.append((prefix + relative, data, os.access(absolute, os.X_OK)))
    return package_format.pack_files(contents)


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"
