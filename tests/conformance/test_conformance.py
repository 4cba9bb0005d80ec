"""The shipped conformance suite (``pytest_ale.testing``) against every built-in provider
in ``CASES``: exec, timeouts, files and staging, fencing, the host-socket door, the one
teardown path, sweeps, caps, and the trust checks (an unprivileged agent, a fence that
cannot be outrun, grading out of the agent's reach)."""

from pytest_ale.testing.suite import *  # noqa: F403
