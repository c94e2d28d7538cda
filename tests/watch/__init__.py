"""Watch, lock, election and lease-shape tests."""
