"""A flame graph of collapsed stacks as one self-contained SVG file.

Each frame is a box as wide as the samples under it, its callees stacked above it (the root at
the bottom, as Brendan Gregg's flame graphs draw it); hovering over a box shows its full name
and share as the box's ``<title>``. The file has no script and fetches nothing: it opens the
same in a browser, an image viewer, or inline in the dashboard, and nothing in it runs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from ember.runtime.wire.protocol import ember_pb2 as pb

WIDTH = 1200
ROW = 17
FONT = 12
CHAR = 7.0  # a character's width at FONT, near enough to fit labels in their boxes
MIN_BOX = 0.3  # pixels: narrower boxes are not drawn (their samples still count below)
MAX_BOXES = 20000


@dataclass
class _Node:
    name: str
    count: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(stacks: list[pb.StackCount]) -> _Node:
    root = _Node("all")
    for entry in stacks:
        root.count += entry.count
        node = root
        for label in entry.stack.split(";"):
            child = node.children.get(label)
            if child is None:
                child = node.children[label] = _Node(label)
            child.count += entry.count
            node = child
    return root


def _depth(node: _Node) -> int:
    return 1 + max((_depth(child) for child in node.children.values()), default=0)


def _colour(name: str) -> str:
    """A warm colour fixed by the name, so a function keeps its colour from graph to graph."""
    h = zlib.crc32(name.encode())
    return f"rgb({205 + h % 50},{(h >> 8) % 180 + 40},{(h >> 16) % 55})"


def svg(profile: pb.ProcessProfile, title: str) -> str:
    """The flame graph of ``profile``, headed by ``title``."""
    root = _tree(list(profile.stacks))
    total = root.count
    depth = _depth(root) if total else 1
    top = 44
    height = top + depth * ROW + 24
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="Verdana, sans-serif" font-size="{FONT}">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#fdfdf6"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="15">{escape(title)}</text>',
        f'<text x="10" y="38" fill="#555">{total} samples; hover over a box for its name and '
        f"share</text>",
    ]
    if not total:
        out.append(f'<text x="10" y="{top + 14}">no samples: nothing ran Python code</text>')
    scale = (WIDTH - 20) / total if total else 0.0
    boxes = 0
    # Depth first, each node drawn above its parent: x is where its samples begin.
    pending: list[tuple[_Node, float, int]] = [(root, 10.0, 0)]
    while pending and boxes < MAX_BOXES:
        node, x, level = pending.pop()
        width = node.count * scale
        if width < MIN_BOX:
            continue
        y = height - 24 - (level + 1) * ROW
        share = 100.0 * node.count / total
        name = escape(node.name)
        out.append(
            f'<g><title>{name} ({node.count} samples, {share:.2f}%)</title>'
            f'<rect x="{x:.2f}" y="{y}" width="{width:.2f}" height="{ROW - 1}" '
            f'fill="{"#e0e0e0" if level == 0 else _colour(node.name)}" rx="2"/>'
        )
        fits = int((width - 6) / CHAR)
        if fits >= 3:
            label = node.name if len(node.name) <= fits else node.name[: fits - 2] + ".."
            out.append(f'<text x="{x + 3:.2f}" y="{y + ROW - 5}">{escape(label)}</text>')
        out.append("</g>")
        boxes += 1
        child_x = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            pending.append((child, child_x, level + 1))
            child_x += child.count * scale
    out.append("</svg>")
    return "\n".join(out) + "\n"
