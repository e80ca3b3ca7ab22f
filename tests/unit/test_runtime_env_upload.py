"""A runtime_env made ready for the cluster where the user is (``ember.runtime_env_upload``):
local code packed and uploaded, a module named by its path, a requirements file read, the
options refusing a bad one naming the field."""

from __future__ import annotations

import io
import json
import types
import zipfile
from pathlib import Path

import pytest

import ember
from ember import options as opts
from ember import runtime_env_upload
from ember.runtime.wire import package_format


class Head:
    """Stands in for the head's package store: what was uploaded, by URI."""

    def __init__(self) -> None:
        self.packages: dict[str, bytes] = {}

    def upload(self, data: bytes) -> str:
        uri = package_format.uri_of(data)
        self.packages[uri] = data
        return uri

    def members(self, uri: str) -> list[str]:
        with zipfile.ZipFile(io.BytesIO(self.packages[uri])) as archive:
            return sorted(archive.namelist())


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_local_code_becomes_packages_and_a_requirements_file_its_lines(tmp_path: Path) -> None:
    project = _tree(tmp_path / "project", {"main.py": "", "big.log": "x", "mypkg/__init__.py": ""})
    lib = _tree(tmp_path / "lib" / "helpers", {"__init__.py": "", "util.py": "", "notes.log": ""})
    single = _tree(tmp_path, {"single.py": "X = 1\n"}) / "single.py"
    wheel = tmp_path / "tool-1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel bytes")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nrequests==2.32.0  # http\n\n--find-links /wheels\nsix\n")
    head = Head()
    env = runtime_env_upload.checked({
        "working_dir": str(project),
        "py_modules": [str(lib), str(single), str(wheel), "ember-pkg://" + "3" * 64 + ".zip"],
        "excludes": ["*.log"],
        "pip": str(requirements),
        "env_vars": {"A": "1"},
    })
    resolved = runtime_env_upload.resolve(env, head.upload)
    assert "excludes" not in resolved  # applied where the files are
    assert resolved["env_vars"] == {"A": "1"}
    assert resolved["pip"] == ["requests==2.32.0", "--find-links /wheels", "six"]
    assert head.members(resolved["working_dir"]) == ["main.py", "mypkg/__init__.py"]
    directory, module, whl, remote = resolved["py_modules"]
    # A package goes under its own name, so that `import helpers` finds it on the node.
    assert head.members(directory) == ["helpers/__init__.py", "helpers/util.py"]
    assert head.members(module) == ["single.py"]
    assert head.members(whl) == ["tool-1.0-py3-none-any.whl"]
    assert remote == "ember-pkg://" + "3" * 64 + ".zip"
    # Unchanged code resolves to the same URIs: nothing new to upload.
    again = Head()
    assert runtime_env_upload.resolve(env, again.upload) == resolved


def test_an_imported_module_is_named_by_its_path(tmp_path: Path) -> None:
    package = types.ModuleType("mypkg")
    package.__file__ = str(tmp_path / "mypkg" / "__init__.py")
    module = types.ModuleType("single")
    module.__file__ = str(tmp_path / "single.py")
    env = runtime_env_upload.checked({"py_modules": [package, module]})
    assert env["py_modules"] == [str(tmp_path / "mypkg"), str(tmp_path / "single.py")]
    with pytest.raises(ValueError, match=r"runtime_env.py_modules: module nofile has no file"):
        runtime_env_upload.checked({"py_modules": [types.ModuleType("nofile")]})


def test_what_cannot_be_resolved_is_said(tmp_path: Path) -> None:
    head = Head()
    with pytest.raises(ValueError, match=r"runtime_env.working_dir '/no/such/dir' does not exist"):
        runtime_env_upload.resolve({"working_dir": "/no/such/dir"}, head.upload)
    with pytest.raises(ValueError, match=r"runtime_env.py_modules\[0\] .* is not a directory, .py, .whl or .zip"):
        (tmp_path / "data.bin").write_bytes(b"x")
        runtime_env_upload.resolve({"py_modules": [str(tmp_path / "data.bin")]}, head.upload)
    with pytest.raises(ValueError, match=r"runtime_env.pip: cannot read the requirements file 'nope.txt'"):
        runtime_env_upload.resolve({"pip": "nope.txt"}, head.upload)
    with pytest.raises(ValueError, match=r"runtime_env.pip.pip_version is not supported"):
        runtime_env_upload.checked({"pip": {"packages": ["x"], "pip_version": "==23.0"}})
    assert head.packages == {}


def test_options_take_a_runtime_env_and_refuse_a_bad_one_naming_the_field() -> None:
    @ember.remote(runtime_env={"env_vars": {"A": "1"}})
    def f() -> None:
        return None

    options = opts.task_options(opts.validate({"runtime_env": {"env_vars": {"A": "1"}}}, opts.TASK_OPTIONS, "f"), "f")
    assert json.loads(options.runtime_env) == {"env_vars": {"A": "1"}}
    assert opts.task_options({}, "f").runtime_env == ""
    with pytest.raises(ValueError, match=r"f.options: runtime_env.env_vars.A must be a string, not int"):
        f.options(runtime_env={"env_vars": {"A": 1}})
    with pytest.raises(ValueError, match=r"runtime_env.image_uri is not supported"):
        ember.remote(runtime_env={"image_uri": "x"})(lambda: None)

    @ember.remote
    class Actor:
        pass

    with pytest.raises(ValueError, match=r"Actor.options: runtime_env.pip must be a list"):
        Actor.options(runtime_env={"pip": 3})


def test_rays_runtime_env_class_is_a_checked_dict() -> None:
    from ember.runtime_env import RuntimeEnv, RuntimeEnvConfig

    env = RuntimeEnv(working_dir=".", env_vars={"A": "1"}, pip=None, config=RuntimeEnvConfig(setup_timeout_seconds=5))
    assert env == {"working_dir": ".", "env_vars": {"A": "1"},
                   "config": {"setup_timeout_seconds": 5, "eager_install": True}}
    assert opts.validate({"runtime_env": env}, opts.TASK_OPTIONS, "f")["runtime_env"] == env
    with pytest.raises(ValueError, match=r"runtime_env.conda is not supported"):
        RuntimeEnv(conda="base")
    with pytest.raises(ValueError, match=r"setup_timeout_seconds must be a positive whole number"):
        RuntimeEnvConfig(setup_timeout_seconds=0)
    assert ember.runtime_env.RuntimeEnv is RuntimeEnv
