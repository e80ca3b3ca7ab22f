"""Kubernetes resource quantities (``500m``, ``2Gi``, ``1e3``) read without the kubernetes package.

``ember up`` reads the same ``Cluster`` manifest as the operator, on a laptop where importing
the Kubernetes client would cost a second and pull in dozens of modules. The grammar is the
API server's (the pattern in the CRD); values agree with ``kubernetes.utils.quantity``, which
the operator uses (a unit test compares the two).
"""

from __future__ import annotations

import re
from decimal import Decimal

# The API server's quantity grammar, as the CRD's schema writes it.
PATTERN = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}


def parse(value: object) -> Decimal:
    """The amount a quantity stands for; ``ValueError`` naming it when it is not one."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Decimal(value)
    match = PATTERN.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a quantity (like 2, 500m, 1.5, 2Gi)")
    number, suffix = Decimal(match["number"]), match["suffix"] or ""
    if suffix in _BINARY:
        return number * (2 ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    return number.scaleb(int(Decimal(suffix[1:])))
