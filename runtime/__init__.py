"""ember.runtime: what runs inside the cluster's processes.

The head, the node agent, the worker, the owner logic shared by drivers and workers, the wire
protocol and the launchers. Nothing here imports the client package (``ember``) or Kubernetes
libraries: the same code runs on a laptop and in a pod.
"""

__version__ = "0.1.0"
