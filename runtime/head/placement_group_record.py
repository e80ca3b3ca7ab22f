"""A placement group as the head knows it: what it was created with, where its bundles are.

``info`` carries its state and a version that goes up with every change; a change wakes those
waiting on ``changed`` (``pg.ready()``, ``pg.wait()``, work waiting for the group's placement).
"""

from __future__ import annotations

import asyncio
import time

from ember.runtime.wire import resources
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.resources import Shape

# A group in these states waits for (part of) its placement.
PENDING = (pb.PG_PENDING, pb.PG_RESCHEDULING)


class GroupRecord:
    """``info`` is what callers read (``GetPlacementGroup``, the table); the rest is the
    head's own: the attempt under way and its bundles, retries, bundles a restarted head has
    yet to take back."""

    def __init__(self, spec: pb.PlacementGroupSpec, order: int) -> None:
        self.spec = spec
        self.order = order
        self.bundles: list[Shape] = [resources.to_fixed(b.quantities) for b in spec.bundles]
        self.selectors = [dict(s.conditions) for s in spec.bundle_label_selector] or [
            {} for _ in spec.bundles
        ]
        self.info = pb.PlacementGroupInfo(
            spec=spec, state=pb.PG_PENDING, bundle_nodes=[b""] * len(spec.bundles),
            scheduling_state="QUEUED", created_at=time.time(), version=1,
        )
        self.started = time.monotonic()
        self.attempt = 0
        self.failures = 0
        self.retry_at = 0.0
        self.reserving: dict[int, bytes] = {}  # bundles of the attempt under way, by node
        # Bundles a restarted head knows of from its state directory but their nodes have not
        # listed yet: not counted on the nodes until they do.
        self.unconfirmed: dict[int, bytes] = {}
        self.changed = asyncio.Event()
        self.hex = spec.placement_group_id.hex()

    @property
    def state(self) -> pb.PlacementGroupState:
        return self.info.state

    def describe(self) -> str:
        name = f" '{self.spec.name}'" if self.spec.name else ""
        return f"placement group{name} ({self.hex[:12]})"

    def placed(self) -> dict[int, bytes]:
        return {i: node for i, node in enumerate(self.info.bundle_nodes) if node}

    def update(self, **fields: object) -> None:
        for key, value in fields.items():
            if key == "bundle_nodes":
                assert isinstance(value, list)
                del self.info.bundle_nodes[:]
                self.info.bundle_nodes.extend(value)
            else:
                setattr(self.info, key, value)
        self.info.version += 1
        self.changed.set()
        self.changed = asyncio.Event()
