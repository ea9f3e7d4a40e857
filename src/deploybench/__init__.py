"""deploybench: reproducible benchmarks of OpenMMLab models across deployment backends."""

__version__ = "0.1.0"
