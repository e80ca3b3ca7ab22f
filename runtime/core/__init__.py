"""The core: the library inside every driver and worker.

The owner of tasks and objects, the task and actor submitters, the memory store, reference
counting, the executor and the actor host. It talks to node agents and the head only through
``ember.runtime.wire``; it imports neither ``node`` nor ``head``.
"""
