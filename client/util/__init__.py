"""``ember.util``: what Ray keeps under ``ray.util`` that ember offers.

``ActorPool``, placement groups and ``scheduling_strategies`` here; ``ember.util.queue``
(``Queue``), ``ember.util.multiprocessing`` (``Pool``), ``ember.util.state`` (the state API) and
``ember.util.metrics`` as modules.

As in Ray, ``ember.util.placement_group`` is the function (the module of that name is still
importable: ``from ember.util.placement_group import PlacementGroup``).
"""

from ember.util import scheduling_strategies
from ember.util.actor_pool import ActorPool
from ember.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

__all__ = [
    "ActorPool",
    "PlacementGroup",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
    "scheduling_strategies",
]
