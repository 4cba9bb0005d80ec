"""Every conformance check in one module: what ``--ale-conformance`` collects, and what a
test module imports to run them against its own ``ale_conformance_target``::

    from pytest_ale.testing.suite import *  # noqa: F403
"""

from .checks.exec import *  # noqa: F403
from .checks.files import *  # noqa: F403
from .checks.lifecycle import *  # noqa: F403
from .checks.trust import *  # noqa: F403
