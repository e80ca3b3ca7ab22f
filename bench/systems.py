"""The systems a benchmark runs on, behind one small interface.

ember and Ray share an API, so one adapter serves both; Dask's futures get their own. Each
adapter exposes: ``init(num_cpus, nodes)``, ``task(fn, on_second_node=False)`` (returns a submit
function whose futures may be passed to other submits as arguments; with two nodes, ``put`` stores
on the first and ``on_second_node`` runs the task on the other, so its argument crosses between
them), ``get``, ``put``, ``shutdown``, and for actors
``actors(cls, count, *args)``, ``call(handle, method, *args)``, ``kill(handle)`` and ``in_task()``: what a
task that drives actors receives as an argument to call them and wait for the results. ember and
Ray also offer ``actor_pool(handles)``, their ``util.ActorPool`` (Dask has none).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import time
from collections.abc import Callable
from typing import Any

SYSTEMS = ("ember", "ray", "dask")


def installed(name: str) -> bool:
    module = "distributed" if name == "dask" else name
    return importlib.util.find_spec(module) is not None


class RayLikeCalls:
    """Calling actors of ember or Ray and waiting for the results, on the driver or in a task.

    It holds only the system's name, so it pickles into a task as it is, and the task finds the
    API (already imported there, since the worker runs it) by that name.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        return getattr(handle, method).remote(*args)

    def get(self, refs: Any) -> Any:
        return importlib.import_module(self.name).get(refs)


class RayLike:
    """ember, or Ray itself."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.api: Any = None
        self._calls = RayLikeCalls(name)
        self._second_node: Any = None

    def init(self, num_cpus: int | None = None, nodes: int = 1) -> None:
        self.api = importlib.import_module(self.name)
        kwargs: dict[str, Any] = {}
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        if self.name == "ray":
            # Like for like: ember has no dashboard yet, and its logs stay in files. A cluster of
            # its own ("local"): without it, ray.init() joins any Ray cluster running here.
            kwargs.update(
                address="local", include_dashboard=False, log_to_driver=True, logging_level="ERROR"
            )
        if nodes == 2 and self.name == "ray":
            from ray.cluster_utils import Cluster

            self._second_node = Cluster(
                initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False}
            )
            self._second_node.add_node(num_cpus=2, resources={"second": 4})
            kwargs = {"address": self._second_node.address, "logging_level": "ERROR"}
        started = self.api.init(**kwargs)
        if nodes == 2 and self.name == "ember":
            from ember.runtime import launcher
            from ember.runtime.core import context

            self._second_node = launcher.start_agent(
                started.session_dir,
                context.require_core().head_address,
                num_cpus=2,
                resources={"second": 4},
            )
        if nodes == 2:
            while len([n for n in self.api.nodes() if n["Alive"]]) < 2:
                time.sleep(0.05)

    def task(
        self, fn: Callable[..., Any], on_second_node: bool = False, **options: Any
    ) -> Callable[..., Any]:
        if on_second_node:
            options["resources"] = {"second": 1}
        remote = self.api.remote(**options)(fn) if options else self.api.remote(fn)
        return remote.remote

    def get(self, refs: Any) -> Any:
        return self.api.get(refs)

    def put(self, value: Any) -> Any:
        return self.api.put(value)

    def wait_all(self, refs: list[Any]) -> None:
        self.api.wait(refs, num_returns=len(refs))

    def actors(self, cls: type, count: int, *args: Any) -> list[Any]:
        actor_class = self.api.remote(cls)
        return [actor_class.remote(*args) for _ in range(count)]

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        return self._calls.call(handle, method, *args)

    def kill(self, handle: Any) -> None:
        self.api.kill(handle)

    def in_task(self) -> RayLikeCalls:
        return self._calls

    def actor_pool(self, handles: list[Any]) -> Any:
        """``ray.util.ActorPool`` / ``ember.util.ActorPool`` over the handles."""
        return importlib.import_module(f"{self.name}.util").ActorPool(handles)

    def shutdown(self) -> None:
        self.api.shutdown()
        if self._second_node is not None:
            if self.name == "ray":
                self._second_node.shutdown()
            else:
                self._second_node.stop()


class DaskCalls:
    """Calling Dask actors and waiting for the results, on the client or in a task.

    A method call returns an ``ActorFuture`` at once; it has ``result()`` but no place in
    ``Client.gather``, so lists of them are waited for one by one.
    """

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        return getattr(handle, method)(*args)

    def get(self, futures: Any) -> Any:
        if isinstance(futures, list):
            return [future.result() for future in futures]
        return futures.result()


class Dask:
    """dask.distributed on a LocalCluster of processes, one thread each (like one CPU slot)."""

    name = "dask"

    def __init__(self) -> None:
        self._calls = DaskCalls()
        # An actor lives as long as the future of its creation; kill() cancels that future.
        self.actor_futures: dict[str, Any] = {}

    def init(self, num_cpus: int | None = None, nodes: int = 1) -> None:
        from distributed import Client, LocalCluster

        workers = num_cpus or os.cpu_count() or 1
        self.cluster = LocalCluster(
            n_workers=max(nodes, min(workers, os.cpu_count() or 1)),
            threads_per_worker=max(1, workers // (os.cpu_count() or 1)),
            processes=True,
            dashboard_address=None,
        )
        self.client = Client(self.cluster)
        # With two "nodes", puts go to one worker process and second-node tasks to the other.
        self.workers = sorted(self.client.scheduler_info()["workers"]) if nodes == 2 else []

    def task(
        self, fn: Callable[..., Any], on_second_node: bool = False, **options: Any
    ) -> Callable[..., Any]:
        client = self.client
        where = (
            {"workers": [self.workers[1]], "allow_other_workers": False} if on_second_node else {}
        )

        def submit(*args: Any) -> Any:
            return client.submit(fn, *args, pure=False, **where)

        return submit

    def get(self, futures: Any) -> Any:
        from distributed.actor import BaseActorFuture

        if isinstance(futures, list):
            if futures and isinstance(futures[0], BaseActorFuture):
                return self._calls.get(futures)
            return self.client.gather(futures)
        return futures.result()

    def put(self, value: Any) -> Any:
        # scatter() splits containers into one future per element; wrap to keep one object.
        where = {"workers": [self.workers[0]]} if self.workers else {}
        return self.client.scatter([value], hash=False, **where)[0]

    def wait_all(self, futures: list[Any]) -> None:
        from distributed import wait

        wait(futures)

    def actors(self, cls: type, count: int, *args: Any) -> list[Any]:
        # The handle comes from the creation's result: submit them all before waiting for any,
        # as ember and Ray create them concurrently too.
        futures = [self.client.submit(cls, *args, actor=True) for _ in range(count)]
        handles = [future.result() for future in futures]
        for handle, future in zip(handles, futures, strict=True):
            self.actor_futures[handle.key] = future
        return handles

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        return self._calls.call(handle, method, *args)

    def kill(self, handle: Any) -> None:
        self.client.cancel(self.actor_futures.pop(handle.key))

    def in_task(self) -> DaskCalls:
        return self._calls

    def shutdown(self) -> None:
        self.client.close()
        self.cluster.close()


def make(name: str) -> RayLike | Dask:
    if name == "dask":
        return Dask()
    return RayLike(name)
