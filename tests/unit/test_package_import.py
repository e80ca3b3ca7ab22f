"""``import ember`` is cheap and the cluster's own processes never load the driver's API.

Every head, node agent and zygote starts as ``python -m ember.runtime...``, which imports the
``ember`` package first; the package's names load on first use, so none of them pays for the
driver's connection, launcher and autoscaler on its way to the first task.
"""

from __future__ import annotations

import subprocess
import sys

import ember

DRIVER_MODULES = ("ember.connection", "ember.launcher", "ember.autoscaler", "ember.actor")


def _loaded_after(statement: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{statement}; import sys; print('\\n'.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    )
    return set(out.stdout.split())


def test_the_cluster_processes_do_not_load_the_driver_api() -> None:
    for entry in ("head_main", "agent_main", "worker_main"):
        loaded = _loaded_after(f"import ember.runtime.{entry}")
        assert not loaded.intersection(DRIVER_MODULES), (entry, loaded.intersection(DRIVER_MODULES))


def test_every_public_name_resolves() -> None:
    for name in ember.__all__:
        assert getattr(ember, name) is not None, name
    assert ember.util.ActorPool.__name__ == "ActorPool"
    assert callable(ember.remote) and ember.ObjectRef.__name__ == "ObjectRef"


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        ember.no_such_thing  # noqa: B018
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("ember.no_such_thing resolved")
