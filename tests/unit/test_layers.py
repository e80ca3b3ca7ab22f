"""`import ember` stays light: no Kubernetes libraries on a laptop driver."""

import subprocess
import sys


def test_import_ember_does_not_import_kubernetes_or_kopf():
    code = (
        "import sys, ember; "
        "print(sorted(m for m in ('kopf', 'kubernetes', 'ember.operator') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_stdlib_operator_is_not_shadowed():
    import operator

    assert hasattr(operator, "itemgetter")
