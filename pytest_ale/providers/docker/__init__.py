"""The ``docker`` provider: one container per trial on a Docker engine, through the Docker SDK.

- ``provider``: ``DockerProvider`` (acquire, release, sweep; the engine's health),
- ``sandbox``: ``DockerSandbox`` (exec, archives, the fence, grading as root),
- ``commands``: one command through the engine's exec API, killable, capped,
- ``archive``, ``collect``: tar streams in and out, ``output/`` to disk,
- ``client``: connecting to the engine and telling its faults apart,
- ``guard``: containers removed when the process is interrupted,
- ``image``: building the sandbox and harness images from a debootstrap base.
"""

from .provider import DockerProvider

__all__ = ["DockerProvider"]
