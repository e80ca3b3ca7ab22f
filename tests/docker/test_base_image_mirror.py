"""Which Debian mirror ``build_base_image.sh`` bootstraps from: DEBIAN_MIRROR, else the one this
machine's apt sources name, in either of apt's formats. Runs the script's ``--mirror`` mode on
apt directories made here (APT_ETC, OS_RELEASE point it at them); nothing is fetched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.docker import base_image

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n'


def mirror(etc: Path, os_release: str = DEBIAN, **env: str) -> subprocess.CompletedProcess[str]:
    release = etc / "os-release"
    release.write_text(os_release)
    environment = {k: v for k, v in os.environ.items() if k != "DEBIAN_MIRROR"}
    environment.update(APT_ETC=str(etc), OS_RELEASE=str(release), **env)
    return subprocess.run(["sh", str(base_image.SCRIPT), "--mirror"], capture_output=True,
                          text=True, timeout=30, env=environment)


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    return tmp_path


def test_the_one_line_format_gives_the_entry_that_serves_bookworm(etc: Path) -> None:
    (etc / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://sources.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://other.example/debian trixie main\n"
        "deb [arch=amd64] http://mirror.example/debian bookworm main contrib  # the one\n"
    )
    result = mirror(etc)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "http://mirror.example/debian"


def test_deb822_stanzas_are_read_with_several_uris_disabled_ones_and_continuations(etc: Path) -> None:
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb-src\nURIs: http://sources.example/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n"
        "# a comment between stanzas\n"
        "types: deb deb-src\n"
        "uris: mirror+file:/etc/apt/mirrors.txt\n"
        "  https://proxy.example/debian\n"
        "Suites: bookworm-updates\n"
        "  bookworm\n"
        "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n Suites: wrong\n"
        " -----END PGP PUBLIC KEY BLOCK-----\n"
    )
    result = mirror(etc)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "https://proxy.example/debian"


def test_a_debian_machine_of_another_release_gives_its_own_mirror(etc: Path) -> None:
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: trixie-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: trixie trixie-updates\n"
    )
    (etc / "sources.list.d" / "vendor.list").write_text("deb http://vendor.example/apt stable/ main\n")
    result = mirror(etc)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "http://mirror.example/debian"


def test_another_distribution_without_a_debian_source_is_told_to_set_debian_mirror(etc: Path) -> None:
    (etc / "sources.list").write_text("deb http://archive.example/ubuntu jammy main\n")
    result = mirror(etc, UBUNTU)
    assert result.returncode == 2 and result.stdout == ""
    assert "DEBIAN_MIRROR" in result.stderr and str(etc) in result.stderr


def test_debian_mirror_overrides_the_apt_sources(etc: Path) -> None:
    (etc / "sources.list").write_text("deb http://mirror.example/debian bookworm main\n")
    result = mirror(etc, DEBIAN_MIRROR="http://override.example/debian")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "http://override.example/debian"
