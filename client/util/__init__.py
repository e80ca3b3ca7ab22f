"""``ember.util``: what Ray keeps under ``ray.util`` that ember offers.

``ActorPool`` here; ``ember.util.queue`` (``Queue``), ``ember.util.multiprocessing``
(``Pool``), ``ember.util.state`` (the state API) and ``ember.util.metrics`` as modules.
"""

from ember.util.actor_pool import ActorPool

__all__ = ["ActorPool"]
