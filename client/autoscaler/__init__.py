"""``ember.autoscaler``: asking the autoscaler for capacity ahead of the work, as in Ray.

    ember.autoscaler.request_resources(num_cpus=64)              # room for 64 one-CPU tasks
    ember.autoscaler.request_resources(bundles=[{"GPU": 1}] * 4)
    ember.autoscaler.request_resources()                          # withdraw the request

Each call replaces the previous one. The request is part of the demand the autoscaler reads,
beside the work that waits; nodes it adds for the request are kept while the request stands.
(``ember.autoscaler.sdk.request_resources`` is the same function, under Ray's path.)
"""

from ember.autoscaler.sdk import request_resources

__all__ = ["request_resources"]
