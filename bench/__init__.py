"""sockcomp benchmarks (not part of the test suite). Run ``python -m bench --help``."""
