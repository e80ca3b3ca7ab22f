"""The base image the project image is built on, made present before the build.

The Dockerfile's default base (``python:3.11-slim-bookworm``) comes from a registry; a machine
that reaches none builds an equivalent from Debian packages with ``build_base_image.sh``. Both
suites that build the image (``tests/docker`` and ``tests/e2e``) get their base here, so that
``EMBER_E2E_BASE_IMAGE`` means the same to both: an image present or pulled as it is named, or,
named ``ember-base:bookworm``, built here when it is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

LOCAL = "ember-base:bookworm"
SCRIPT = Path(__file__).with_name("build_base_image.sh")
BUILD_TIMEOUT = 1800.0  # debootstrap from a mirror, on a slow link


class BaseImageError(RuntimeError):
    pass


def present(tag: str, engine: str = "docker") -> bool:
    result = subprocess.run([engine, "image", "inspect", tag], capture_output=True, timeout=60)
    return result.returncode == 0


def why_not_buildable() -> str | None:
    """Why ``LOCAL`` cannot be built on this machine, or None."""
    if shutil.which("debootstrap") is None:
        return f"no base image {LOCAL}, and debootstrap is missing to build one (apt-get install debootstrap)"
    if os.geteuid() != 0:
        return f"no base image {LOCAL}, and building one with debootstrap needs root"
    return None


def ensure(tag: str, engine: str = "docker") -> str:
    """Make image ``tag`` present for ``engine``: kept when it is, built from Debian packages
    when it is ``LOCAL``, pulled otherwise. Returns what was done; raises naming the image."""
    if present(tag, engine):
        return "present"
    if tag == LOCAL:
        why = why_not_buildable()
        if why:
            raise BaseImageError(why)
        result = subprocess.run([str(SCRIPT), tag], capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        if result.returncode != 0:
            raise BaseImageError(f"building base image {tag} failed ({result.returncode}):\n"
                                 f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return "built from Debian packages"
    result = subprocess.run([engine, "pull", tag], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise BaseImageError(f"base image {tag} is not present and cannot be pulled "
                             f"({engine} pull: {result.stderr.strip()[-500:]}); name {LOCAL} to "
                             f"build one from Debian packages")
    return "pulled"
