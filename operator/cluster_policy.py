"""What a cluster admin decides for every ``Cluster`` the operator serves, and the template
fields a restricted operator refuses.

Whoever may create a ``Cluster`` gets pods made from its templates, run by the operator's
service account. Unchecked, that means "may create Clusters" = "may run pods as any service
account of the namespace, with any of its Secrets and any path of the node". With restricted
templates (the chart's default, ``ember operator --templates restricted``) a template may not:

- use a volume type outside the Pod Security Standards' *restricted* list (so no ``hostPath``;
  ``configMap``, ``csi``, ``downwardAPI``, ``emptyDir``, ``ephemeral``,
  ``persistentVolumeClaim``, ``projected`` and ``secret`` are allowed);
- reference a Secret other than the cluster's own (its token Secret and its TLS Secret), in a
  ``secret`` or ``projected`` volume, a CSI volume's ``nodePublishSecretRef``, an ``env``
  entry's ``secretKeyRef`` or an ``envFrom`` ``secretRef``;
- name a ``serviceAccountName`` other than ``default``.

``privileged``, ``hostNetwork``, ``hostPID``, ``hostIPC``, capabilities and security contexts
are no template fields at all: the CRD's schema refuses them for every operator.

The chart's ValidatingAdmissionPolicy (``templates/admission-policy.yaml``) refuses the same at
admission, with the same messages; this check is the operator's own, for clusters without that
policy or objects admitted before it: a refused Cluster gets no new pods, condition
``TemplateAllowed`` False and a Warning event ``ForbiddenTemplate`` naming each field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ember.operator.cluster_spec import ClusterSpec

# The Pod Security Standards' restricted profile: the volume types a pod may use there.
ALLOWED_VOLUME_TYPES = (
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
)
ALLOWED_SERVICE_ACCOUNTS = ("", "default")
NOT_OWN = "is not one of the cluster's own (its token and TLS Secrets)"


@dataclass(frozen=True)
class Policy:
    """The admin's choices, the same for every Cluster of one operator."""

    restricted_templates: bool = True
    # A NetworkPolicyPeer selecting the operator's pods, let in to each head's client port by
    # the cluster's NetworkPolicy (None: the operator does not run in a pod, or is not known).
    operator_peer: Mapping[str, Any] | None = None


def own_secrets(spec: ClusterSpec) -> tuple[str, ...]:
    return (spec.token_secret, *([spec.tls_secret] if spec.tls_secret else []))


def template_violations(spec: ClusterSpec) -> tuple[str, ...]:
    """Each field a restricted operator refuses, as ``<field>: <why>``, the head's template
    first, then each worker group's in order (the admission policy reports the same words)."""
    found = list(_template(spec.head.get("template") or {}, "spec.head.template", own_secrets(spec)))
    for group in spec.groups:
        found += _template(group.template, f"spec.workerGroups[{group.name}].template", own_secrets(spec))
    return tuple(found)


def _template(template: Mapping[str, Any], at: str, own: tuple[str, ...]) -> list[str]:
    volumes = [v for v in template.get("volumes") or [] if isinstance(v, Mapping)]
    found = [
        f"{at}.volumes[{v.get('name', '')}].{kind}: {kind} volumes are not allowed "
        f"(allowed: {', '.join(ALLOWED_VOLUME_TYPES)})"
        for v in volumes for kind in sorted(k for k in v if k != "name" and k not in ALLOWED_VOLUME_TYPES)
    ]
    for v in volumes:
        name = _name(v, "secret", "secretName")
        if "secret" in v and name not in own:
            found.append(f"{at}.volumes[{v.get('name', '')}].secret.secretName: Secret {name} {NOT_OWN}")
    for v in volumes:
        names = [_name(s, "secret", "name") for s in (v.get("projected") or {}).get("sources") or []
                 if isinstance(s, Mapping) and "secret" in s]
        strange = [n for n in names if n not in own]
        if strange:
            found.append(f"{at}.volumes[{v.get('name', '')}].projected.sources.secret.name: "
                         f"Secret {strange[0]} {NOT_OWN}")
    for v in volumes:
        csi = v.get("csi") or {}
        if isinstance(csi, Mapping) and "nodePublishSecretRef" in csi:
            name = _name(csi, "nodePublishSecretRef", "name")
            if name not in own:
                found.append(f"{at}.volumes[{v.get('name', '')}].csi.nodePublishSecretRef.name: "
                             f"Secret {name} {NOT_OWN}")
    for variable in template.get("env") or []:
        source = variable.get("valueFrom") or {}
        if isinstance(source, Mapping) and "secretKeyRef" in source:
            name = _name(source, "secretKeyRef", "name")
            if name not in own:
                found.append(f"{at}.env[{variable.get('name', '')}].valueFrom.secretKeyRef.name: "
                             f"Secret {name} {NOT_OWN}")
    for source in template.get("envFrom") or []:
        if isinstance(source, Mapping) and "secretRef" in source:
            name = _name(source, "secretRef", "name")
            if name not in own:
                found.append(f"{at}.envFrom.secretRef.name: Secret {name} {NOT_OWN}")
    account = str(template.get("serviceAccountName") or "")
    if account not in ALLOWED_SERVICE_ACCOUNTS:
        found.append(f"{at}.serviceAccountName: service account {account} is not allowed (only default)")
    return found


def _name(holder: Mapping[str, Any], key: str, field: str) -> str:
    inner = holder.get(key) or {}
    return str(inner.get(field) or "") if isinstance(inner, Mapping) else ""
