"""How fast ``ember up`` grows a cluster for work that no node fits (ember only).

    python bench/autoscaling.py

A Cluster with a 0-CPU head and a group of 1-CPU workers (min 0, max 4) starts empty; one task
is submitted and the time is taken to the new node joining and to the task's result. Then eight
one-second tasks are submitted to the empty group again, once the first workers went idle and
were removed. Ray's autoscaler decides on a 5 s loop; ember's loop runs every 0.5 s here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

MANIFEST = """
apiVersion: ember.dev/v1alpha1
kind: Cluster
metadata: {name: bench}
spec:
  head: {resources: {cpu: 0}}
  workerGroups:
  - {name: small, minReplicas: 0, maxReplicas: 4, resources: {cpu: 1}}
  autoscaling: {enabled: true, idleTimeoutSeconds: 2, intervalSeconds: 0.5}
"""

DRIVER = textwrap.dedent(
    """
    import time, ember
    ember.init(address="auto", logging_level="WARNING")

    @ember.remote(num_cpus=1)
    def one(seconds):
        time.sleep(seconds)
        return 1

    @ember.remote(num_cpus=1)
    def second(i):
        time.sleep(1)
        return i

    def alive():
        return len([n for n in ember.nodes() if n["Alive"]])

    for round in range(3):
        while alive() > 1:  # wait for the workers of the last round to go
            time.sleep(0.2)
        start = time.monotonic()
        ref = one.remote(0)
        while alive() == 1:
            time.sleep(0.01)
        joined = time.monotonic() - start
        ember.get(ref)
        first = time.monotonic() - start
        print(f"round {round}: node joined {joined:.2f} s, first result {first:.2f} s", flush=True)
    while alive() > 1:
        time.sleep(0.2)
    start = time.monotonic()
    ember.get([second.remote(i) for i in range(8)])
    print(f"8 one-second tasks on an empty group of 1-CPU nodes (max 4): {time.monotonic() - start:.2f} s")
    """
)


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, EMBER_TEMP_DIR=os.path.join(scratch, "ember"))
        manifest = Path(scratch) / "cluster.yaml"
        manifest.write_text(MANIFEST)
        up = subprocess.Popen(
            [sys.executable, "-m", "ember.cli", "up", str(manifest), "--port", "0", "--dashboard-port", "-1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        try:
            time.sleep(2)
            result = subprocess.run([sys.executable, "-c", DRIVER], env=env, text=True, capture_output=True)
            print(result.stdout, end="")
            if result.returncode:
                print(result.stderr[-2000:], file=sys.stderr)
                return 1
        finally:
            subprocess.run([sys.executable, "-m", "ember.cli", "down"], env=env, capture_output=True)
            up.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
