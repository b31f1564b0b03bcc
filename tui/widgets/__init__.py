"""Chat widgets, one per module."""
