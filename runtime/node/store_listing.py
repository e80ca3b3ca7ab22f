"""What a node's object store holds, object by object, for ``ember memory``.

The owners say why each object is alive; only the stores say where its copies are: which
nodes hold one, whether it is the first copy or one pulled from another node, and whether it
is spilled to disk. Read on the agent's event loop, where the store's books live, only when
someone asks.
"""

from __future__ import annotations

from ember.runtime.node.object_store import ObjectStore
from ember.runtime.node.store_entries import CREATING, SPILLED
from ember.runtime.wire.protocol import ember_pb2 as pb

LISTED = 50_000  # objects one node lists at most
PULLED = "pull:"  # how a copy pulled from another node names its creator (object_transfer.py)


def store_view(store: ObjectStore, node_id: bytes, address: str) -> pb.NodeStore:
    view = pb.NodeStore(
        node_id=node_id, node_address=address, capacity=store.capacity, used=store.used,
        spilled=store.spilled_bytes,
    )
    for entry in list(store.entries.values()):
        if entry.state == CREATING:
            continue  # not an object yet: its writer is still filling it
        if len(view.objects) >= LISTED:
            view.omitted += 1
            continue
        view.objects.append(pb.StoredObject(
            object_id=entry.object_id, size=entry.size, owner_address=entry.owner,
            spilled=entry.state == SPILLED, primary=not entry.creator.startswith(PULLED),
        ))
    return view
