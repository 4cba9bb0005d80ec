"""The provider conformance suite, shipped: the checks every built-in provider passes, for
any provider to run against itself.

One line, for a provider registered under the ``pytest_ale.providers`` entry-point group
(or a preset), options given as ``KEY=VALUE``::

    pytest -p pytest_ale.testing --ale-conformance=NAME[,KEY=VALUE...]

Or, for more than the interface can say (is a released sandbox gone from its cloud?), in a
conftest: ``pytest_plugins = ["pytest_ale.testing"]`` and an ``ale_conformance_target``
fixture returning a ``Target``; then ``from pytest_ale.testing.suite import *`` in a test
module. ``suite.py`` lists the checks (``checks/``); ``plugin.py`` holds the option and the
fixtures; ``target.py`` the ``Target``.
"""

from .probes import alive, beats
from .target import Target, from_option, spec_for

pytest_plugins = ["pytest_ale.testing.plugin"]

__all__ = ["Target", "alive", "beats", "from_option", "spec_for"]
