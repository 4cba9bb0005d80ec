"""The ALE-style tree here is test data for ``pytest-ale deps`` (tests/test_deps.py), not tests."""

collect_ignore = ["tasks"]
