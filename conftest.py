"""Repo-root conftest: enables pytester so the plugin's own tests can drive pytest runs."""

pytest_plugins = ["pytester"]
