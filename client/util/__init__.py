"""``ember.util``: what Ray keeps under ``ray.util`` that ember offers (today: ``metrics``)."""
