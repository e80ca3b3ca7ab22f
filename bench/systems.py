"""The systems a benchmark runs on, behind one small interface.

ember and Ray share an API, so one adapter serves both; Dask's futures get their own. Each
adapter exposes: ``init(num_cpus)``, ``task(fn)`` (returns a submit function whose futures may be
passed to other submits as arguments), ``get``, ``put``, ``shutdown``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from typing import Any

SYSTEMS = ("ember", "ray", "dask")


def installed(name: str) -> bool:
    module = "distributed" if name == "dask" else name
    return importlib.util.find_spec(module) is not None


class RayLike:
    """ember, or Ray itself."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.api: Any = None

    def init(self, num_cpus: int | None = None) -> None:
        self.api = importlib.import_module(self.name)
        kwargs: dict[str, Any] = {}
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        if self.name == "ray":
            # Like for like: ember has no dashboard yet, and its logs stay in files.
            kwargs.update(include_dashboard=False, log_to_driver=True, logging_level="ERROR")
        self.api.init(**kwargs)

    def task(self, fn: Callable[..., Any], **options: Any) -> Callable[..., Any]:
        remote = self.api.remote(**options)(fn) if options else self.api.remote(fn)
        return remote.remote

    def get(self, refs: Any) -> Any:
        return self.api.get(refs)

    def put(self, value: Any) -> Any:
        return self.api.put(value)

    def wait_all(self, refs: list[Any]) -> None:
        self.api.wait(refs, num_returns=len(refs))

    def shutdown(self) -> None:
        self.api.shutdown()


class Dask:
    """dask.distributed on a LocalCluster of processes, one thread each (like one CPU slot)."""

    name = "dask"

    def init(self, num_cpus: int | None = None) -> None:
        from distributed import Client, LocalCluster

        workers = num_cpus or os.cpu_count() or 1
        self.cluster = LocalCluster(
            n_workers=min(workers, os.cpu_count() or 1),
            threads_per_worker=max(1, workers // (os.cpu_count() or 1)),
            processes=True,
            dashboard_address=None,
        )
        self.client = Client(self.cluster)

    def task(self, fn: Callable[..., Any], **options: Any) -> Callable[..., Any]:
        client = self.client

        def submit(*args: Any) -> Any:
            return client.submit(fn, *args, pure=False)

        return submit

    def get(self, futures: Any) -> Any:
        if isinstance(futures, list):
            return self.client.gather(futures)
        return futures.result()

    def put(self, value: Any) -> Any:
        # scatter() splits containers into one future per element; wrap to keep one object.
        return self.client.scatter([value], hash=False)[0]

    def wait_all(self, futures: list[Any]) -> None:
        from distributed import wait

        wait(futures)

    def shutdown(self) -> None:
        self.client.close()
        self.cluster.close()


def make(name: str) -> RayLike | Dask:
    if name == "dask":
        return Dask()
    return RayLike(name)
