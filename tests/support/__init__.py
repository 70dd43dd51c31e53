"""Development and test support that is not shipped: the local cluster and its tooling."""
