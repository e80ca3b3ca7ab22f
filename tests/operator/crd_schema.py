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


def load_crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def root_schema() -> dict[str, Any]:
    return load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


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


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused, as ``kubectl apply --validate=strict`` does."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items() if k != "default"}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _cel(schema: dict[str, Any], value: Any, where: list[Any], errors: list[str]) -> None:
    for rule in schema.get("x-kubernetes-validations") or []:
        environment = celpy.Environment()
        program = environment.program(environment.compile(rule["rule"]))
        result = program.evaluate({"self": celpy.json_to_cel(value)})
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            field = _path(where) + rule.get("fieldPath", "")
            errors.append(f"{field}: {rule['message']}")
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                _cel(sub, value[key], [*where, key], errors)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _cel(schema["items"], item, [*where, index], errors)


def validate(cluster: dict[str, Any]) -> list[str]:
    """Every error the API server would report for ``cluster``, each starting with its field."""
    schema = root_schema()
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
