"""``ember.util``: what Ray keeps under ``ray.util`` that ember offers.

``ActorPool`` here; ``ember.util.metrics`` as a module.
"""

from ember.util.actor_pool import ActorPool

__all__ = ["ActorPool"]
