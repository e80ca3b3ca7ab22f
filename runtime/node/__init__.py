"""The node agent: one per machine or pod.

Leases against the node's resources, the worker pool and its zygote, the shared-memory object
store, transfers between nodes, drain and the node's metrics. It imports neither ``core`` nor
``head``: it speaks to both through ``ember.runtime.wire``.
"""
