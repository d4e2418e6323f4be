"""Benchmarks: each module prints a table and is run by hand, never from the tests."""
