"""The judge-graded ALE-format tree here is test data (copied into pytester folders), not tests."""

collect_ignore = ["tree", "data"]
