"""The README and docs/ stay true to the code: every flag and environment variable is
documented, every link leads somewhere, and the README starts where a new user does."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from ember import cli

REPO = Path(__file__).resolve().parent.parent.parent
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
SOURCES = [p for folder in ("client", "runtime", "operator") for p in (REPO / folder).rglob("*.py")]


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_flag_of_every_command_is_in_the_cli_page(command: str) -> None:
    page = (DOCS / "cli.md").read_text()
    assert f"`ember {command}`" in page
    for action in _commands()[command]._actions:
        for flag in action.option_strings:
            if flag not in ("-h", "--help"):
                assert f"`{flag}" in page, f"ember {command} {flag} is not in docs/cli.md"


def test_every_environment_variable_is_in_the_configuration_page() -> None:
    page = (DOCS / "configuration.md").read_text()
    named = {
        name
        for source in SOURCES
        for name in re.findall(r"\bEMBER_[A-Z0-9_]*[A-Z0-9]\b", source.read_text())
    }
    named.discard("EMBER_READY")  # a line a daemon prints to its launcher, not a variable
    assert named, "found no variable: the pattern or the source folders moved"
    missing = sorted(name for name in named if f"`{name}`" not in page)
    assert missing == [], f"not in docs/configuration.md: {missing}"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    anchors = set()
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        text = re.sub(r"[^\w\- ]", "", heading.lower()).strip()
        anchors.add(text.replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_lead_to_files_and_headings(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name} links to {target}: no such file"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name} links to {target}: no such heading"


def test_the_readme_starts_with_the_two_commands_then_the_local_tour_then_kubernetes() -> None:
    readme = (REPO / "README.md").read_text()
    assert readme.index("make demo") < readme.index("make test") < readme.index("\n## ")
    order = [
        "## Install", "## A five-minute tour (local)", "## A five-minute tour on Kubernetes (kind)",
        "## What differs from Ray", "## Documentation",
    ]
    at = [readme.index(f"\n{heading}\n") for heading in order]
    assert at == sorted(at), order
    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"the README does not link docs/{page.name}"
