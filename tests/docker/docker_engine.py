"""The docker CLI, as the e2e suite uses it: every container and network it makes carries one
run label, so that all of them are removed at the end, whatever failed on the way."""

from __future__ import annotations

import ipaddress
import json
import random
import shutil
import subprocess
import time
from dataclasses import dataclass, field


class DockerError(RuntimeError):
    pass


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS``; a failure raises with what docker said."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise DockerError(f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def unavailable() -> str | None:
    """Why docker cannot be used here, or None."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed (apt-get install docker.io)"
    info = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    if info.returncode != 0:
        return f"the Docker daemon does not answer (start dockerd): {info.stderr.strip()[:200]}"
    return None


@dataclass
class Run:
    """The containers and network of one e2e run, removed together by ``remove_all``."""

    label: str = field(default_factory=lambda: f"ember-e2e-{random.getrandbits(32):08x}")
    network: str = ""
    subnet: ipaddress.IPv4Network | None = None

    def create_network(self) -> None:
        """A user-defined network with a subnet of our own, so containers get fixed addresses
        (a node advertises its address, as a pod does its IP). Taken subnets are skipped."""
        name = f"{self.label}-net"
        last = ""
        for _ in range(20):
            subnet = ipaddress.IPv4Network(f"10.{random.randint(64, 254)}.{random.randint(0, 255)}.0/24")
            result = docker(
                "network", "create", "--driver", "bridge", "--subnet", str(subnet),
                "--label", f"ember.e2e={self.label}", name, check=False,
            )
            if result.returncode == 0:
                self.network, self.subnet = name, subnet
                return
            last = result.stderr.strip()
        raise DockerError(f"no free subnet for network {name}: {last}")

    def address(self, index: int) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 10 + index)

    def run(self, name: str, image: str, *args: str, options: list[str]) -> str:
        """Start a container on the run's network (detached); returns its name."""
        container = f"{self.label}-{name}"
        docker(
            "run", "--detach", "--name", container, "--label", f"ember.e2e={self.label}",
            "--network", self.network, *options, image, *args,
        )
        return container

    def published_port(self, container: str, port: int) -> int:
        """The host port Docker published ``port`` of ``container`` on."""
        lines = docker("port", container, f"{port}/tcp").stdout.split()
        return int(lines[0].rsplit(":", 1)[1])

    def inspect(self, container: str) -> dict[str, object]:
        return dict(json.loads(docker("inspect", container).stdout)[0])

    def health(self, container: str) -> str:
        state = self.inspect(container)["State"]
        assert isinstance(state, dict)
        return str(state.get("Health", {}).get("Status", "none"))

    def wait_healthy(self, container: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        status = self.health(container)
        while status != "healthy" and time.monotonic() < deadline:
            time.sleep(1)
            status = self.health(container)
        return status

    def logs(self, container: str) -> str:
        result = docker("logs", "--tail", "60", container, check=False)
        return result.stdout + result.stderr

    def remove_all(self) -> list[str]:
        """Remove every container and the network of this run; returns what is left (nothing)."""
        found = docker("ps", "-aq", "--filter", f"label=ember.e2e={self.label}", check=False)
        ids = found.stdout.split()
        if ids:
            docker("rm", "-f", "-v", *ids, check=False, timeout=180)
        networks = docker("network", "ls", "-q", "--filter", f"label=ember.e2e={self.label}",
                          check=False).stdout.split()
        if networks:
            docker("network", "rm", *networks, check=False)
        left = docker("ps", "-aq", "--filter", f"label=ember.e2e={self.label}", check=False)
        left_networks = docker("network", "ls", "-q", "--filter", f"label=ember.e2e={self.label}",
                               check=False)
        return left.stdout.split() + left_networks.stdout.split()
