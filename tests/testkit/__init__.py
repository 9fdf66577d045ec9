"""Test fixtures shared by the tests and benchmarks (not part of the installed packages)."""
