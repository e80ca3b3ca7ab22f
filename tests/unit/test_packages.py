"""Code packages (``ember.runtime.wire.package_format``) and what a working_dir leaves out
(``ember.working_dir``): the same files make the same package, a hostile package cannot write
outside its directory, gitignore's rules mean what git means, and a too-big directory is refused
naming the biggest files."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from ember import working_dir
from ember.runtime.wire import package_format
from ember.runtime.wire.package_format import PackageError


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_same_files_make_the_same_bytes_and_uri(tmp_path: Path) -> None:
    first = _tree(tmp_path / "a", {"pkg/__init__.py": "", "pkg/m.py": "x = 1\n", "run.py": "print(1)\n"})
    second = _tree(tmp_path / "b", {"run.py": "print(1)\n", "pkg/m.py": "x = 1\n", "pkg/__init__.py": ""})
    os.utime(second / "run.py", (1, 1))  # other timestamps: still the same package
    one, two = working_dir.pack(str(first)), working_dir.pack(str(second))
    assert one == two
    assert package_format.uri_of(one) == package_format.uri_of(two)
    assert package_format.URI.match(package_format.uri_of(one))
    (second / "pkg" / "m.py").write_text("x = 2\n")
    assert package_format.uri_of(working_dir.pack(str(second))) != package_format.uri_of(one)


def test_a_package_unpacks_to_its_files_with_the_executable_bit(tmp_path: Path) -> None:
    root = _tree(tmp_path / "src", {"bin/tool.sh": "#!/bin/sh\necho hi\n", "data/a.txt": "a"})
    (root / "bin" / "tool.sh").chmod(0o755)
    target = tmp_path / "out"
    package_format.extract(working_dir.pack(str(root)), str(target))
    assert (target / "data" / "a.txt").read_text() == "a"
    assert os.stat(target / "bin" / "tool.sh").st_mode & stat.S_IXUSR
    assert not os.stat(target / "data" / "a.txt").st_mode & stat.S_IXUSR
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".unpacking")]


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/escape", "a/../../escape", "a//b", "a/./b"])
def test_a_member_that_would_leave_the_directory_is_refused(tmp_path: Path, name: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fine.txt", "ok")
        archive.writestr(name, "evil")
    with pytest.raises(PackageError, match="unsafe path|outside"):
        package_format.extract(buffer.getvalue(), str(tmp_path / "out"))
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".unpacking")]


def test_a_symlink_member_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(PackageError, match="not a regular file"):
        package_format.extract(buffer.getvalue(), str(tmp_path / "out"))


def test_a_downloaded_archive_loses_its_single_top_directory(tmp_path: Path) -> None:
    data = package_format.pack_mapping({"repo-main/app.py": "A", "repo-main/lib/b.py": "B"})
    package_format.extract(data, str(tmp_path / "stripped"), strip_single_top=True)
    assert (tmp_path / "stripped" / "app.py").read_text() == "A"
    package_format.extract(data, str(tmp_path / "kept"))
    assert (tmp_path / "kept" / "repo-main" / "lib" / "b.py").read_text() == "B"


def test_not_a_zip_and_not_a_uri_are_said_so(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="not a zip"):
        package_format.extract(b"hello", str(tmp_path / "out"))
    with pytest.raises(PackageError, match="not a package URI"):
        package_format.digest_of("ember-pkg://../../etc.zip")


def test_gitignore_rules_mean_what_git_means(tmp_path: Path) -> None:
    root = _tree(tmp_path / "p", {
        ".gitignore": "*.log\n/build\ndata/\n!keep.log\n# a comment\n",
        "app.py": "", "debug.log": "", "keep.log": "", "build/out.o": "", "src/build/x.py": "",
        "data/big.bin": "", "src/data/also.bin": "", "src/app.pyc": "", "src/notes.txt": "",
        "sub/.gitignore": "secret.txt\n", "sub/secret.txt": "", "secret.txt": "",
        ".git/HEAD": "", "src/__pycache__/m.cpython-311.pyc": "",
    })
    names = [name for name, _ in working_dir.list_files(str(root), excludes=["*.pyc", "src/notes.txt"])]
    assert names == [
        ".gitignore", "app.py", "keep.log", "secret.txt", "src/build/x.py", "sub/.gitignore",
    ]


def test_double_star_and_character_classes(tmp_path: Path) -> None:
    rules = working_dir.compile_rules(["a/**/z.txt", "[ab]?.md", "logs/**"])
    assert working_dir.excluded("a/z.txt", False, rules)
    assert working_dir.excluded("a/b/c/z.txt", False, rules)
    assert not working_dir.excluded("b/z.txt", False, rules)
    assert working_dir.excluded("x/b1.md", False, rules)
    assert not working_dir.excluded("c1.md", False, rules)
    assert working_dir.excluded("logs/today/x", False, rules)


def test_a_directory_too_big_is_refused_naming_the_limit_and_the_biggest_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path / "big", {"small.py": "x" * 10})
    (root / "model.bin").write_bytes(b"\0" * 5000)
    (root / "weights.bin").write_bytes(b"\0" * 3000)
    monkeypatch.setenv(package_format.MAX_BYTES_ENV, "4096")
    with pytest.raises(PackageError) as refused:
        working_dir.pack(str(root))
    message = str(refused.value)
    assert "4.0 KiB" in message and package_format.MAX_BYTES_ENV in message
    assert message.index("model.bin") < message.index("weights.bin")
    assert "excludes" in message
    assert working_dir.pack(str(root), excludes=["*.bin"])  # left out: it fits


def test_a_working_dir_that_is_no_directory_is_said_so(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="neither a directory nor a .zip"):
        working_dir.pack(str(tmp_path / "missing"))
