"""The template fields a restricted operator refuses, each named with its place in the spec."""

from __future__ import annotations

from typing import Any

import pytest

from ember.operator import cluster_spec
from ember.operator.cluster_policy import ALLOWED_VOLUME_TYPES, own_secrets, template_violations

NOT_OWN = "is not one of the cluster's own (its token and TLS Secrets)"


def violations(spec: dict[str, Any]) -> tuple[str, ...]:
    return template_violations(cluster_spec.parse({"metadata": {"name": "c", "namespace": "ns"}, "spec": spec}))


def worker(template: dict[str, Any], name: str = "cpu") -> dict[str, Any]:
    return {"workerGroups": [{"name": name, "template": template}]}


ALLOWED = {
    "labels": {"team": "ml"},
    "annotations": {"a": "b"},
    "nodeSelector": {"gpu": "yes"},
    "tolerations": [{"key": "gpu", "operator": "Exists"}],
    "affinity": {"nodeAffinity": {}},
    "priorityClassName": "batch",
    "serviceAccountName": "default",
    "automountServiceAccountToken": True,
    "env": [
        {"name": "PLAIN", "value": "1"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "c-token", "key": "token"}}},
        {"name": "CERT", "valueFrom": {"secretKeyRef": {"name": "c-tls", "key": "tls.crt"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "CONF", "valueFrom": {"configMapKeyRef": {"name": "anything", "key": "k"}}},
    ],
    "envFrom": [{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "c-tls"}}],
    "volumes": [
        {"name": "scratch", "emptyDir": {}},
        {"name": "conf", "configMap": {"name": "settings"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}},
        {"name": "tls-copy", "secret": {"secretName": "c-tls"}},
        {"name": "mixed", "projected": {"sources": [{"secret": {"name": "c-token"}}, {"configMap": {"name": "x"}},
                                                    {"serviceAccountToken": {"path": "t"}}]}},
        {"name": "store", "csi": {"driver": "example.com/fs"}},
        {"name": "info", "downwardAPI": {"items": []}},
        {"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
    ],
}


def test_the_allowed_fields_pass_on_head_and_workers() -> None:
    spec = {"tls": {"secretName": "c-tls"}, "head": {"template": ALLOWED}, **worker(ALLOWED)}
    assert violations(spec) == ()
    assert {k for v in ALLOWED["volumes"] for k in v if k != "name"} == set(ALLOWED_VOLUME_TYPES)


def test_the_clusters_own_secrets_are_its_token_and_tls_secrets() -> None:
    parse = lambda spec: cluster_spec.parse({"metadata": {"name": "c"}, "spec": spec})  # noqa: E731
    assert own_secrets(parse({})) == ("c-token",)
    assert own_secrets(parse({"auth": {"secretName": "mine"}, "tls": {"secretName": "t"}})) == ("mine", "t")


# Each refused field, alone in a template, and what is said of it (after the template's path).
REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"volumes": [{"name": "host", "hostPath": {"path": "/"}}]},
     "volumes[host].hostPath: hostPath volumes are not allowed (allowed: configMap, csi, downwardAPI, "
     "emptyDir, ephemeral, persistentVolumeClaim, projected, secret)"),
    ({"volumes": [{"name": "share", "nfs": {"server": "nas", "path": "/"}}]},
     "volumes[share].nfs: nfs volumes are not allowed (allowed: configMap, csi, downwardAPI, "
     "emptyDir, ephemeral, persistentVolumeClaim, projected, secret)"),
    ({"volumes": [{"name": "db", "secret": {"secretName": "db-password"}}]},
     f"volumes[db].secret.secretName: Secret db-password {NOT_OWN}"),
    ({"volumes": [{"name": "p", "projected": {"sources": [{"secret": {"name": "c-token"}},
                                                          {"secret": {"name": "cloud-keys"}}]}}]},
     f"volumes[p].projected.sources.secret.name: Secret cloud-keys {NOT_OWN}"),
    ({"volumes": [{"name": "s", "csi": {"driver": "x", "nodePublishSecretRef": {"name": "csi-creds"}}}]},
     f"volumes[s].csi.nodePublishSecretRef.name: Secret csi-creds {NOT_OWN}"),
    ({"env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "p"}}}]},
     f"env[PASSWORD].valueFrom.secretKeyRef.name: Secret db {NOT_OWN}"),
    ({"envFrom": [{"secretRef": {"name": "aws"}}]}, f"envFrom.secretRef.name: Secret aws {NOT_OWN}"),
    ({"serviceAccountName": "cluster-admin"},
     "serviceAccountName: service account cluster-admin is not allowed (only default)"),
]


@pytest.mark.parametrize(("template", "said"), REFUSED)
def test_each_refused_field_is_named_where_it_is(template: dict[str, Any], said: str) -> None:
    assert violations({"head": {"template": template}}) == (f"spec.head.template.{said}",)
    assert violations(worker(template, "gpu")) == (f"spec.workerGroups[gpu].template.{said}",)


def test_every_refused_field_is_said_head_first_then_each_group_in_order() -> None:
    bad = {"serviceAccountName": "x", "volumes": [{"name": "h", "hostPath": {"path": "/"}},
                                                  {"name": "s", "secret": {"secretName": "other"}}]}
    spec = {"head": {"template": {"serviceAccountName": "y"}},
            "workerGroups": [{"name": "a", "template": bad}, {"name": "ok"}, {"name": "b", "template": bad}]}
    found = violations(spec)
    assert [v.split(": ", 1)[0] for v in found] == [
        "spec.head.template.serviceAccountName",
        "spec.workerGroups[a].template.volumes[h].hostPath",
        "spec.workerGroups[a].template.volumes[s].secret.secretName",
        "spec.workerGroups[a].template.serviceAccountName",
        "spec.workerGroups[b].template.volumes[h].hostPath",
        "spec.workerGroups[b].template.volumes[s].secret.secretName",
        "spec.workerGroups[b].template.serviceAccountName",
    ]
