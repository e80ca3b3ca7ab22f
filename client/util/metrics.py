"""``ember.util.metrics``: Counter, Gauge and Histogram for tasks and actors, as in Ray.

    from ember.util.metrics import Counter
    requests = Counter("requests", description="requests served", tag_keys=("route",))
    requests.inc(1.0, tags={"route": "/"})

The values appear on the node agent's Prometheus endpoint (``/metrics``) within seconds, under
the names given here (a counter as ``NAME_total``), summed over the node's processes.
"""

from ember.runtime.core.user_metrics import Counter, Gauge, Histogram

__all__ = ["Counter", "Gauge", "Histogram"]
