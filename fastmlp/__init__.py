"""fastmlp (in progress)."""
