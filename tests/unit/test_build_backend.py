"""tools/build_backend.py: editable installs are strict, whatever pip was told."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def backend() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_backend", REPO / "tools" / "build_backend.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("given", [None, {}, {"editable_mode": "strict"}, {"editable-mode": "STRICT"}])
def test_editable_installs_are_strict(backend: ModuleType, given: dict[str, str] | None) -> None:
    assert backend.editable_settings(given) == {"editable_mode": "strict"}


def test_other_settings_pass_through(backend: ModuleType) -> None:
    assert backend.editable_settings({"--build-option": "-q"}) == {
        "--build-option": "-q", "editable_mode": "strict",
    }


@pytest.mark.parametrize("mode", ["lenient", "compat"])
def test_a_mode_that_cannot_import_ember_operator_is_refused(backend: ModuleType, mode: str) -> None:
    with pytest.raises(ValueError, match=f"not '{mode}'.*ember.operator"):
        backend.editable_settings({"editable_mode": mode})


def test_pyproject_builds_with_this_backend() -> None:
    import tomllib

    system = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]
    assert system["build-backend"] == "build_backend"
    assert system["backend-path"] == ["tools"]
    assert "include tools/build_backend.py" in (REPO / "MANIFEST.in").read_text()
