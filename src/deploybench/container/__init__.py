"""Pinned Docker images, and pipeline steps run in them (runtime: docker)."""
