"""Generated gRPC code for ``ember.proto`` (regenerate with ``make proto``)."""
