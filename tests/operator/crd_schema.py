"""The Cluster CRD's schema applied the way the API server applies it, for tests.

What the API server does on create, in order: prune or (``kubectl apply``'s strict field
validation) refuse unknown fields, apply defaults, check the OpenAPI schema, evaluate the CEL
rules. Here unknown fields are refused (``additionalProperties: false`` wherever the schema
does not preserve them), defaults come from the schema's ``default`` keywords, the schema is
checked by ``jsonschema`` (Draft 4: Kubernetes' boolean ``exclusiveMinimum``) and every
``x-kubernetes-validations`` rule is evaluated by ``cel-python`` on ``self``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "charts" / "ember" / "crds" / "clusters.ember.dev.yaml"
JOB_CRD_PATH = REPO / "charts" / "ember" / "crds" / "emberjobs.ember.dev.yaml"
EXAMPLES_DIR = REPO / "manifests" / "examples"


def load_crd(path: Path = CRD_PATH) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def root_schema(path: Path = CRD_PATH) -> dict[str, Any]:
    return load_crd(path)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def examples(kind: str) -> list[Path]:
    """The files of manifests/examples/ that hold an object of ``kind`` (Cluster, EmberJob)."""
    return [path for path in sorted(EXAMPLES_DIR.glob("*.yaml"))
            if any(doc and doc.get("kind") == kind for doc in yaml.safe_load_all(path.read_text()))]


def example(path: Path, kind: str) -> dict[str, Any]:
    """The object of ``kind`` in an example file."""
    return next(doc for doc in yaml.safe_load_all(path.read_text()) if doc and doc.get("kind") == kind)


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Kubernetes structural defaulting: a field's default fills it when absent from a present
    parent object, then defaulting continues inside it."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in (schema.get("properties") or {}):
                    value[key] = apply_defaults(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def _strict(schema: Any, root: bool = True) -> Any:
    """The schema with unknown fields refused, as ``kubectl apply --validate=strict`` does
    (but not in ``metadata``: the API server checks it as any object's metadata, and the CRD
    may describe only its ``name`` there)."""
    if isinstance(schema, dict):
        out = {k: _strict(v, root=False) for k, v in schema.items() if k != "default"}
        if root and "metadata" in (out.get("properties") or {}):
            out["properties"] = {**out["properties"], "metadata": {"type": "object"}}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v, root=False) for v in schema]
    return schema


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _evaluate(expression: str, value: Any) -> Any:
    environment = celpy.Environment()
    return environment.program(environment.compile(expression)).evaluate({"self": celpy.json_to_cel(value)})


def rule_message(rule: dict[str, Any], value: Any) -> str:
    """The message the API server reports for a failed rule: ``messageExpression``'s result,
    or ``message`` when the expression fails or gives an empty or multi-line string."""
    expression = rule.get("messageExpression")
    if expression:
        try:
            text = str(_evaluate(expression, value))
        except celpy.CELEvalError:
            text = ""
        if text.strip() and "\n" not in text:
            return text
    return str(rule.get("message") or f"failed rule: {rule['rule']}")


def field_path_parts(schema: dict[str, Any], field_path: str) -> list[str]:
    """The field names of a rule's ``fieldPath`` (".a.b"), each checked against the schema as
    the API server checks them when the CRD is created (``ValidFieldPath``: every step a
    property of the schema it is in); raises ValueError naming the step that is not."""
    if not field_path.startswith("."):
        raise ValueError(f"fieldPath {field_path!r} does not start with '.'")
    parts = field_path[1:].split(".")
    here = schema
    for part in parts:
        properties = here.get("properties") or {}
        if part not in properties:
            raise ValueError(f"fieldPath {field_path!r}: {part!r} does not refer to a valid field")
        here = properties[part]
    return parts


def _cel(schema: dict[str, Any], value: Any, where: list[Any], errors: list[str]) -> None:
    for rule in schema.get("x-kubernetes-validations") or []:
        result = _evaluate(rule["rule"], value)
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            at = [*where, *field_path_parts(schema, rule["fieldPath"])] if rule.get("fieldPath") else where
            errors.append(f"{_path(at)}: {rule_message(rule, value)}")
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                _cel(sub, value[key], [*where, key], errors)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _cel(schema["items"], item, [*where, index], errors)


def validate(cluster: dict[str, Any], path: Path = CRD_PATH) -> list[str]:
    """Every error the API server would report for ``cluster`` (or another object of the CRD
    at ``path``), each starting with its field."""
    schema = root_schema(path)
    defaulted = apply_defaults(schema, copy.deepcopy(cluster))
    validator = jsonschema.Draft4Validator(_strict(schema))
    errors = [f"{_path(e.absolute_path)}: {e.message}" for e in validator.iter_errors(defaulted)]
    if errors:  # the API server stops before CEL when the schema fails
        return errors
    _cel(schema, defaulted, [], errors)
    return errors


def cel_rules(schema: Any | None = None) -> list[dict[str, Any]]:
    """Every x-kubernetes-validations rule of the schema."""
    schema = root_schema() if schema is None else schema
    found: list[dict[str, Any]] = []
    if isinstance(schema, dict):
        found += schema.get("x-kubernetes-validations") or []
        for value in schema.values():
            found += cel_rules(value)
    elif isinstance(schema, list):
        for value in schema:
            found += cel_rules(value)
    return found
