"""ember.operator: the kopf operator that turns a ``Cluster`` resource into pods."""
