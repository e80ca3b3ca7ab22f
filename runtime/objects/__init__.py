"""Values and their bytes: what an object is, wherever it lives.

Serialization, the shared-memory object format and the arena mapping, ids, ``ObjectRef`` and
the errors users see. Shared by drivers, workers and node agents, so it imports none of them:
``ObjectRef`` finds its process's core through a registered callback.
"""
