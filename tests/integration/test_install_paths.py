"""Every documented way to install ember works from any folder.

Each test installs a copy of this checkout into a fresh virtual environment — as a wheel built
from the sdist, with plain ``pip install .`` and with the README's ``pip install -e .`` — and
then, from an unrelated folder that holds a folder named ``ember`` (ember's own session root,
here: where scripts run, such folders exist), imports ``ember.operator``, runs ``ember --help``
and runs one task on a local cluster. And ``make install`` (where ``make demo`` starts) says one
line, not pip's or setuptools' output.

Offline: the fresh environment gets ember's dependencies, pip and setuptools by a ``.pth`` line
naming a folder of links to this environment's packages (ember's own left out), and every pip
call runs with ``--no-index --no-deps --no-build-isolation`` and without the machine's pip
configuration.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, wait_until_gone

pytestmark = pytest.mark.slow

# What a fresh clone holds; the rest is made by builds and installs.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*_cache", "test-output"
)

PIP = ("-m", "pip", "--disable-pip-version-check")
PIP_OFFLINE = ("--no-index", "--no-deps", "--no-build-isolation", "-q")

TASK = textwrap.dedent(
    """
    import ember
    ctx = ember.init(num_cpus=1)

    @ember.remote
    def add_one(x):
        return x + 1

    print("session:", ctx.session_dir)
    print("package:", ember.__file__)
    print("result:", ember.get(add_one.remote(41)))
    ember.shutdown()
    """
)


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """The user's environment without this test run's Python and pip settings."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "PIP_", "EMBER_", "VIRTUAL_ENV"))
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    env["EMBER_TEMP_DIR"] = str(tmp_path / "work" / "ember")
    return env


def _fresh_venv(tmp_path: Path, env: dict[str, str]) -> Path:
    """A new virtual environment that sees this one's packages but not ember."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if not entry.name.lower().startswith(("ember", "__editable__")):
            (deps / entry.name).symlink_to(entry)
    python = venv / "bin" / "python"
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        tmp_path, env,
    ).strip()
    Path(site, "ember_test_dependencies.pth").write_text(f"{deps}\n")
    return venv


def _clone(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_IN_A_CLONE, symlinks=True)
    return source


def _wheel_from_sdist(source: Path, tmp_path: Path, env: dict[str, str]) -> Path:
    """sdist, then a wheel built from it (as `python -m build` does)."""
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-c",
         "import sys; sys.path.insert(0, 'tools'); import build_backend; "
         f"print(build_backend.build_sdist({str(dist)!r}))"],
        source, env,
    )
    (sdist,) = dist.glob("ember-*.tar.gz")
    _run([sys.executable, *PIP, "wheel", *PIP_OFFLINE, "-w", str(dist), str(sdist)], tmp_path, env)
    (wheel,) = dist.glob("ember-*.whl")
    return wheel


@pytest.mark.parametrize("how", ["wheel", "pip install .", "pip install -e ."])
def test_installed_ember_works_from_an_unrelated_folder(tmp_path: Path, how: str) -> None:
    env = _clean_env(tmp_path)
    source = _clone(tmp_path)
    venv = _fresh_venv(tmp_path, env)
    python = str(venv / "bin" / "python")
    if how == "wheel":
        target = [str(_wheel_from_sdist(source, tmp_path, env))]
    elif how == "pip install .":
        target = [str(source)]
    else:
        target = ["-e", str(source)]
    _run([python, *PIP, "install", *PIP_OFFLINE, *target], tmp_path, env)

    work = tmp_path / "work"
    (work / "ember").mkdir(parents=True)  # a folder named like the package, where scripts run

    imported = _run(
        [python, "-c", "import ember.operator.handlers, ember; print(ember.init.__module__)"],
        work, env,
    )
    assert imported.strip() == "ember.connection"
    # The dashboard's page and the charting library it loads are package data, installed too.
    shipped = _run(
        [python, "-c", "from importlib import resources; head = resources.files('ember.runtime.head'); "
         "print([head.joinpath(p).is_file() for p in ('dashboard.html', 'static/uPlot.iife.min.js', "
         "'static/uPlot.min.css', 'static/uPlot.LICENSE')])"],
        work, env,
    )
    assert shipped.strip() == "[True, True, True, True]", shipped

    usage = _run([str(venv / "bin" / "ember"), "--help"], work, env)
    assert "usage: ember" in usage and "start" in usage

    (work / "one_task.py").write_text(TASK)
    said = dict(
        line.split(": ", 1) for line in _run([python, "one_task.py"], work, env).splitlines()
        if line.startswith(("session: ", "package: ", "result: "))
    )
    session_dir, ember_file = said["session"], said["package"]
    assert said["result"] == "42"
    installed_in = source / "build" if how == "pip install -e ." else venv
    assert Path(ember_file).is_relative_to(installed_in), ember_file
    assert wait_until_gone(session_dir) == []


def test_make_install_says_one_line_and_installs(tmp_path: Path) -> None:
    """`make demo` starts with `make install`: its output is the demo's, not pip's or the
    setuptools banner of an editable install (pip still shows its errors)."""
    env = _clean_env(tmp_path)
    env.update(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0")
    source = _clone(tmp_path)
    venv = _fresh_venv(tmp_path, env)
    done = subprocess.run(
        ["make", "--no-print-directory", "install", f"VENV={venv}"],
        cwd=source, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == f"Installing ember and its test extras into {venv} ...\n"
    imported = _run([str(venv / "bin" / "python"), "-c", "import ember.operator"], tmp_path, env)
    assert imported == ""


def test_the_images_build_stage_builds_ember_from_what_it_copies(tmp_path: Path) -> None:
    """The Dockerfile's build stage sees only what it COPYs, through .dockerignore's allow-list:
    that must be enough to build the wheel (the build backend included)."""
    env = _clean_env(tmp_path)
    build_stage = (REPO / "Dockerfile").read_text().split("\nFROM ")[1]
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    context = tmp_path / "src"
    context.mkdir()
    copies = re.findall(r"^COPY (?!--)(.+)$", build_stage, re.M)
    assert copies, "no COPY in the Dockerfile's build stage"
    for copy in copies:
        *sources, target = shlex.split(copy)
        for source in sources:
            assert source.rstrip("/") in allowed, f"{source} is COPYed but .dockerignore leaves it out"
            into = context / target
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, into, ignore=NOT_IN_A_CLONE)
            else:
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / source, into)
    wheels = tmp_path / "wheels"
    _run([sys.executable, *PIP, "wheel", *PIP_OFFLINE, "-w", str(wheels), str(context)], tmp_path, env)
    (wheel,) = wheels.glob("ember-*.whl")
    with zipfile.ZipFile(wheel) as built:
        assert "ember/operator/handlers.py" in built.namelist()
