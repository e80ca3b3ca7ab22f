"""The resources a placement group's bundles put on a node, and what work in a group asks for.

A committed bundle takes its resources from the node and gives them back under names of its
own, as Ray does: bundle ``i`` of group ``g`` with ``{CPU: 2}`` adds ``CPU_group_i_g: 2`` (that
bundle's) and ``CPU_group_g: 2`` (any bundle of the group on that node, summed), plus
``bundle_group_i_g`` and ``bundle_group_g`` (1000 each) that a task asking for nothing but a
place in the group takes a sliver of. Work in a group asks for the renamed resources; a lease
then consumes the bundle's share and can never take what other work on the node holds. Both
names are asked for when a bundle is named, so that work sent to "any bundle" and work sent to
bundle ``i`` cannot together take more than the bundle holds.

Everything that reads these names — node agents granting leases, the head choosing nodes, the
owner building a task's request — goes through this module, so the format lives in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ember.runtime.wire import resources
from ember.runtime.wire.protocol import ember_pb2 as pb
from ember.runtime.wire.resources import Shape

BUNDLE = "bundle"  # the resource every bundle has, for work that needs only a place in the group
BUNDLE_AMOUNT = 1000 * resources.UNIT
READY_AMOUNT = 10  # 0.001 of the bundle resource: what a task that only needs a place takes

_NAME = re.compile(r"^(?P<original>.+)_group_(?:(?P<index>\d+)_)?(?P<group>[0-9a-f]{32})$")


def indexed(name: str, group_hex: str, index: int) -> str:
    return f"{name}_group_{index}_{group_hex}"


def wildcard(name: str, group_hex: str) -> str:
    return f"{name}_group_{group_hex}"


def parse(name: str) -> tuple[str, str, int] | None:
    """``(original name, group id in hex, bundle index or -1)`` of a bundle resource, or None
    for an ordinary resource."""
    match = _NAME.match(name)
    if match is None:
        return None
    index = match.group("index")
    return match.group("original"), match.group("group"), int(index) if index is not None else -1


def original(name: str) -> str:
    """The resource a name stands for: ``CPU`` for ``CPU_group_0_…``, itself otherwise."""
    parsed = parse(name)
    return parsed[0] if parsed is not None else name


def amount(shape: Mapping[str, int], name: str) -> int:
    """How much of the ordinary resource ``name`` a shape asks for, its bundles' share included:
    a node hands out GPU devices by this, so that ``num_gpus=1`` in a bundle gets a device as
    outside one does. A bundle's share counts once, by the group-wide name every request in a
    group carries (the per-bundle name carries the same amount)."""
    found = shape.get(name, 0)
    for key, value in shape.items():
        if "_group_" in key:
            parsed = parse(key)
            if parsed is not None and parsed[0] == name and parsed[2] == -1:
                found += value
    return found


def committed(bundle: Mapping[str, int], group_hex: str, index: int) -> Shape:
    """What committing bundle ``index`` of a group adds to its node."""
    added: Shape = {}
    for name, amount in bundle.items():
        if amount:
            added[indexed(name, group_hex, index)] = amount
            added[wildcard(name, group_hex)] = amount
    added[indexed(BUNDLE, group_hex, index)] = BUNDLE_AMOUNT
    added[wildcard(BUNDLE, group_hex)] = BUNDLE_AMOUNT
    return added


def in_group(shape: Mapping[str, int], group_hex: str, index: int) -> Shape:
    """What work of ``shape`` asks for in a group's bundle ``index`` (-1: any of its bundles).

    Work that asks for no resource at all still takes a sliver of the bundle resource, so that
    it runs where the group is and only while the group lives."""
    converted: Shape = {}
    for name, amount in shape.items():
        if not amount:
            continue
        converted[wildcard(name, group_hex)] = amount
        if index >= 0:
            converted[indexed(name, group_hex, index)] = amount
    if not converted:
        converted[wildcard(BUNDLE, group_hex)] = READY_AMOUNT
        if index >= 0:
            converted[indexed(BUNDLE, group_hex, index)] = READY_AMOUNT
    return converted


def groups_of(shape: Mapping[str, int]) -> set[str]:
    """The groups (hex ids) whose bundles a shape asks for."""
    found = set()
    for name in shape:
        if "_group_" in name:
            parsed = parse(name)
            if parsed is not None:
                found.add(parsed[1])
    return found


def in_any_group(names: Iterable[str]) -> bool:
    """Whether any of the resource names (a shape's keys) is a placement group's."""
    return any("_group_" in name and parse(name) is not None for name in names)


def plain(shape: Mapping[str, int]) -> tuple[Shape, int]:
    """The shape in ordinary names, and the bundle it names (-1: any, or none): for people."""
    result: Shape = {}
    index = -1
    for name, amount in shape.items():
        parsed = parse(name)
        if parsed is None:
            result[name] = amount
            continue
        base, _, bundle = parsed
        if bundle >= 0:
            index = bundle
            continue  # the wildcard name carries the same amount
        if base != BUNDLE:
            result[base] = amount
    return result, index


def describe(shape: Mapping[str, int]) -> str:
    """``{CPU: 1} in bundle 0 of placement group 3f2a…``, or the plain form of an ordinary
    shape: what error messages say instead of the renamed resources."""
    groups = groups_of(shape)
    if not groups:
        return resources.describe(shape)
    base, index = plain(shape)
    where = f"bundle {index}" if index >= 0 else "any bundle"
    ordinary = {k: v for k, v in shape.items() if parse(k) is None}
    extra = f" and {resources.describe(ordinary)} outside it" if ordinary else ""
    inside = {k: v for k, v in base.items() if k not in ordinary}
    return (
        f"{resources.describe(inside)} in {where} of placement group "
        f"{', '.join(sorted(g[:12] for g in groups))}{extra}"
    )


def release_covers(release: pb.BundleRelease, index: int, attempt: int) -> bool:
    """Whether ``release`` gives back bundle ``index`` reserved by ``attempt``: the bundles it
    names (all when it names none), reserved by its attempt or an earlier one (any when it has
    none), so a late release of a failed attempt never takes back a later one's. The node
    releases by this and the head, waiting for a release's answer, reads listings by it."""
    return (not release.indexes or index in release.indexes) and (
        not release.attempt or attempt <= release.attempt
    )
