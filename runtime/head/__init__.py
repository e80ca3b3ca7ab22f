"""The head: one per cluster.

Membership and the resource view, the actor directory, drain, the queries that fan out to every
node, the state it keeps across restarts, the relay for outside drivers, the dashboard and the
cluster's metrics. It imports neither ``core`` nor ``node``.
"""
