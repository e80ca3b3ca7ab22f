"""Import rules: `import ember` stays light, and nothing shadows the standard library."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_ember_does_not_import_kubernetes_or_kopf():
    code = (
        "import sys, ember; "
        "print(sorted(m for m in ('kopf', 'kubernetes', 'ember.operator') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_stdlib_operator_is_not_shadowed_from_the_repository_root():
    # `python -m` puts the current directory first on sys.path.
    out = subprocess.run(
        [sys.executable, "-m", "json.tool", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert not (REPO / "operator" / "__init__.py").exists()
