"""Merge cell results into the benchmark docs."""
