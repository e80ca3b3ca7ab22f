"""The e2e suite's setting: a Kubernetes cluster with ember's image on its nodes and its chart
installed (see kube.py for the settings, install.py for what is made and removed).

Skipped, saying why, where the tools it needs are missing (``make test`` on a laptop or in CI);
``make kind-e2e`` runs it, on a kind cluster of its own or, with ``EMBER_E2E_CONTEXT``, on an
existing cluster. Set ``EMBER_E2E_KEEP=1`` to keep what it made afterwards for a look around.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e import install, kube

REASON = kube.missing_tools()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not REASON:
        return
    skip = pytest.mark.skip(reason=REASON)
    for item in items:
        if "tests/e2e/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def target() -> Iterator[None]:
    """The cluster made ready for the scenarios; what was made for them is removed at the end."""
    made = install.Installed()
    try:
        install.install(made)
        yield
    finally:
        install.uninstall(made)
