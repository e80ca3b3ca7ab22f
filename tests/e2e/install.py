"""What the e2e suite puts on a cluster before its scenarios, and takes away after them.

On an existing cluster (``EMBER_E2E_CONTEXT``) the suite must leave everything else as it found
it. So it creates only objects of its own — its two namespaces, the chart's CRDs where the
cluster has none, one Helm release whose operator watches only the suite's namespace — marks
what it created with its label, and deletes at the end exactly what carries that label. A
cluster where ember is already installed is refused: a second operator would fight the first
one over the same ``Cluster`` objects, and the suite tests this checkout's CRD, not another.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from tests.docker import base_image
from tests.e2e import kube

CRD_FILES = sorted((kube.REPO / "charts" / "ember" / "crds").glob("*.yaml"))
EMBER_CRD = "clusters.ember.dev"


@dataclass
class Installed:
    """What this run made, to be removed at the end (unless EMBER_E2E_KEEP=1)."""

    kind_cluster: str = ""
    release: bool = False
    namespaces: list[str] = field(default_factory=list)
    crds: list[str] = field(default_factory=list)


def configuration_error() -> str:
    """What is wrong with the settings for the target cluster, or ""."""
    if kube.GIVEN_CONTEXT:
        contexts = kube.run("kubectl", "config", "get-contexts", "-o", "name").split()
        if kube.GIVEN_CONTEXT not in contexts:
            return (f"EMBER_E2E_CONTEXT={kube.GIVEN_CONTEXT} is not a context of the kubeconfig "
                    f"(contexts: {', '.join(contexts) or 'none'})")
    if not kube.LOAD:
        return (f"context {kube.CONTEXT} is not a kind cluster's: set EMBER_E2E_LOAD to the command "
                f"that makes the image {{image}} available to its nodes, e.g. "
                f"'minikube image load {{image}}', 'k3d image import {{image}} -c NAME', "
                f"'docker save {{image}} | ctr -n k8s.io images import -', 'docker push {{image}}', "
                f"or to none when the image is already in a registry its nodes pull from")
    if kube.LOADS and "{image}" not in kube.LOAD:
        return f"EMBER_E2E_LOAD={kube.LOAD!r} has no {{image}} to put the image's name in"
    kube.split_image(kube.IMAGE)
    return ""


def install(made: Installed) -> None:
    """Make the target ready: a kind cluster when asked for one, the image on its nodes, the
    CRDs, the namespaces, the operator. Raises, saying what failed; ``made`` records what was
    made by then, for ``uninstall`` (in the caller's ``finally``)."""
    problem = configuration_error()
    if problem:
        raise AssertionError(problem)
    if not kube.GIVEN_CONTEXT and kube.KIND_CLUSTER not in kube.run("kind", "get", "clusters").split():
        kube.run("kind", "create", "cluster", "--name", kube.KIND_CLUSTER, "--wait", "120s",
                 timeout=kube.KIND_CREATE_TIMEOUT)
        made.kind_cluster = kube.KIND_CLUSTER
    if kube.LOADS:
        build_image()
        load_image(kube.IMAGE)
    refuse_another_ember()
    install_crds(made)
    for namespace in (kube.OPERATOR_NAMESPACE, kube.NAMESPACE):
        create_namespace(namespace, made)
    install_operator(made)
    # A run kept with EMBER_E2E_KEEP=1 left its Clusters: the scenarios start from none.
    kube.kubectl("delete", "clusters", "--all", "-n", kube.NAMESPACE, "--wait=true",
                 f"--timeout={kube.DELETE_TIMEOUT}s", timeout=kube.DELETE_TIMEOUT + 60)


def build_image() -> None:
    """The project image from this checkout, on EMBER_E2E_BASE_IMAGE when given."""
    engine = kube.engine() or "docker"
    command = [engine, "build", "-t", kube.IMAGE]
    if kube.BASE_IMAGE:
        base_image.ensure(kube.BASE_IMAGE, engine)
        command += ["--build-arg", f"BASE_IMAGE={kube.BASE_IMAGE}"]
    result = subprocess.run([*command, str(kube.REPO)], capture_output=True, text=True,
                            timeout=kube.BUILD_TIMEOUT)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def load_image(image: str) -> None:
    """Run EMBER_E2E_LOAD for ``image`` (the project's virtualenv first on PATH, for kind)."""
    command = kube.LOAD.replace("{image}", shlex.quote(image))
    env = dict(os.environ, PATH=f"{kube.REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(command, shell=True, capture_output=True, text=True, env=env,
                            timeout=kube.LOAD_TIMEOUT)
    if result.returncode != 0:
        raise AssertionError(f"loading {image} into the cluster's nodes failed ({result.returncode}): "
                             f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def labelled(metadata: dict[str, Any]) -> bool:
    key, value = kube.CREATED_BY
    return bool((metadata.get("labels") or {}).get(key) == value)


def existing(kind: str, name: str) -> dict[str, Any] | None:
    found = kube.kubectl("get", kind, name, "-o", "json", "--ignore-not-found")
    return json.loads(found) if found.strip() else None


def refuse_another_ember() -> None:
    crd = existing("customresourcedefinition", EMBER_CRD)
    if crd is not None and not labelled(crd["metadata"]):
        raise AssertionError(
            f"ember is installed on context {kube.CONTEXT} already (CRD {EMBER_CRD}, which this "
            f"suite did not make): its operator would handle the suite's Clusters too, and the "
            f"suite tests this checkout's CRD. Run the suite on a cluster without ember, or remove "
            f"it first (helm uninstall, then kubectl delete crd {EMBER_CRD})")


def install_crds(made: Installed) -> None:
    """The chart's CRDs (Helm is told to skip them): each one the cluster lacks is created with
    the suite's label, one the suite made before is brought up to date, and one that another
    installation made (kopf's peering CRDs, shared by every kopf operator) is left alone."""
    for path in CRD_FILES:
        for document in yaml.safe_load_all(path.read_text()):
            if not document:
                continue
            name = document["metadata"]["name"]
            crd = existing("customresourcedefinition", name)
            if crd is not None and not labelled(crd["metadata"]):
                continue
            key, value = kube.CREATED_BY
            document["metadata"].setdefault("labels", {})[key] = value
            kube.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=ember-e2e",
                         "-f", "-", input=yaml.safe_dump(document))
            made.crds.append(name)
            kube.kubectl("wait", "--for=condition=Established", f"customresourcedefinition/{name}",
                         "--timeout=60s", timeout=90)


def create_namespace(name: str, made: Installed) -> None:
    found = existing("namespace", name)
    if found is not None and not labelled(found["metadata"]):
        raise AssertionError(f"namespace {name} exists on context {kube.CONTEXT} and was not made by "
                             f"the e2e suite: it uses namespaces of its own; remove that one first")
    if found is not None and found["metadata"].get("deletionTimestamp"):
        kube.wait_for(lambda: existing("namespace", name) is None,
                      f"namespace {name} of an earlier run to go", timeout=kube.DELETE_TIMEOUT)
        found = None
    if found is None:
        key, value = kube.CREATED_BY
        kube.kubectl("create", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {key: value}},
        }))
    made.namespaces.append(name)


def install_operator(made: Installed) -> None:
    repository, tag = kube.split_image(kube.IMAGE)
    made.release = True
    kube.run(
        "helm", "upgrade", "--install", kube.RELEASE, str(kube.REPO / "charts" / "ember"),
        "--kube-context", kube.CONTEXT, "--namespace", kube.OPERATOR_NAMESPACE, "--skip-crds",
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", f"image.pullPolicy={kube.PULL_POLICY}",
        "--set", f"watchNamespaces[0]={kube.NAMESPACE}",
        "--wait", "--timeout", f"{kube.HELM_TIMEOUT}s",
        timeout=kube.HELM_TIMEOUT + 60,
    )


def uninstall(made: Installed) -> None:
    """Remove what ``install`` made, in an order that needs no escape hatch: the EmberJobs and
    Clusters while their operator still runs (it removes its finalizer), then the operator, the namespaces,
    the CRDs; the kind cluster last. Everything is tried, whatever fails on the way."""
    if kube.KEEP:
        print(f"\nEMBER_E2E_KEEP=1: kept on context {kube.CONTEXT}: release {kube.RELEASE}, "
              f"namespaces {made.namespaces}, CRDs {made.crds}")
        return
    failures: list[str] = []

    def attempt(step: Callable[[], object]) -> None:
        try:
            step()
        except (AssertionError, subprocess.SubprocessError) as error:
            failures.append(str(error))

    if kube.NAMESPACE in made.namespaces and made.release:
        for kind in ("emberjobs", "clusters"):  # a job's own Clusters go with it
            attempt(functools.partial(
                kube.kubectl, "delete", kind, "--all", "-n", kube.NAMESPACE, "--wait=true",
                f"--timeout={kube.DELETE_TIMEOUT}s", timeout=kube.DELETE_TIMEOUT + 60))
    if made.release:
        attempt(lambda: kube.run(
            "helm", "uninstall", kube.RELEASE, "--kube-context", kube.CONTEXT,
            "-n", kube.OPERATOR_NAMESPACE, "--ignore-not-found", "--wait", "--timeout", f"{kube.HELM_TIMEOUT}s",
            timeout=kube.HELM_TIMEOUT + 60))
    for kind, names in (("namespace", list(reversed(made.namespaces))), ("customresourcedefinition", made.crds)):
        for name in names:
            attempt(functools.partial(delete_if_ours, kind, name))
    if made.kind_cluster:
        attempt(lambda: kube.run("kind", "delete", "cluster", "--name", made.kind_cluster,
                                 timeout=kube.DELETE_TIMEOUT))
    if failures:
        raise AssertionError("the e2e suite could not remove all it made:\n" + "\n".join(failures))


def delete_if_ours(kind: str, name: str) -> None:
    found = existing(kind, name)
    if found is not None and labelled(found["metadata"]):
        kube.kubectl("delete", kind, name, "--wait=true", f"--timeout={kube.DELETE_TIMEOUT}s",
                     timeout=kube.DELETE_TIMEOUT + 60)
