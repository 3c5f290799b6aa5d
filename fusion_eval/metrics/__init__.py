"""Local `evaluate` metric modules (no Hub access needed)."""
