"""The conformance checks, by topic: ``exec``, ``files``, ``lifecycle`` and ``trust``.
``pytest_ale.testing.suite`` gathers them into one module to collect."""
