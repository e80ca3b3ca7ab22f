"""setuptools' build backend, with editable installs made strict.

pyproject.toml names this module as the build backend (PEP 517 ``backend-path``). Wheels and
sdists are setuptools' own; only ``build_editable`` changes: it asks for setuptools' *strict*
editable mode whatever the caller passed, because the default (*lenient*) mode cannot install
this layout so that it imports from every folder:

- Its import hook (``__editable___ember_*_finder.py``) maps a top-level name to its folder and
  looks for ``__init__.py`` or a module there. ``ember.operator`` is mapped to ``operator/``,
  which has no ``__init__.py`` on purpose (operator/README.md); for such a folder the hook
  returns nothing, and its namespace hook is consulted only for entries of ``sys.path``, never
  for the ``__path__`` of ``ember``, a regular package. So ``import ember.operator`` fails
  everywhere (pypa/setuptools#4943).
- The hook sits at the *end* of ``sys.meta_path``, after the standard path finder, which
  settles ``import ember`` first: any folder called ``ember`` on ``sys.path`` (the current
  folder, a script's folder: a clone of this repository, a session directory) becomes
  ``ember``, an empty namespace package ("module 'ember' has no attribute 'init'").

Strict mode instead writes a tree of links under ``build/__editable__.ember-*`` that has the
installed layout (``ember/``, ``ember/runtime/``, ``ember/operator/``) and puts that folder on
``sys.path``, where a regular package ``ember`` wins over any namespace folder of that name. Edits
show through the links; a new module shows after installing again.
"""

from __future__ import annotations

from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (
    build_sdist,
    build_wheel,
    get_requires_for_build_editable,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]

STRICT = "strict"


def editable_settings(config_settings: dict[str, Any] | None) -> dict[str, Any]:
    """The caller's settings with the editable mode set to strict; another mode is refused."""
    settings = dict(config_settings or {})
    for key in ("editable_mode", "editable-mode"):
        asked = settings.pop(key, None)
        if asked and str(asked).lower() != STRICT:
            raise ValueError(
                f"ember installs in editable mode {STRICT!r} only, not {asked!r}: in other modes "
                "`import ember.operator` fails and a folder named `ember` on sys.path hides the "
                "package (see tools/build_backend.py); drop --config-settings editable_mode"
            )
    settings["editable_mode"] = STRICT
    return settings


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """setuptools' editable wheel, in strict mode (the module's docstring says why)."""
    return _setuptools.build_editable(
        wheel_directory, editable_settings(config_settings), metadata_directory
    )
