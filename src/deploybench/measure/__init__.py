"""Timing harness and statistics."""
