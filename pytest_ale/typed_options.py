"""Typed options: every provider and agent declares its options as a pydantic model.

A provider or agent class names its model in ``Options`` (a subclass of ``ProviderOptions``
or ``AgentOptions``); unknown keys are refused (``extra="forbid"``), values are checked
and converted once, when the presets resolve at configure time (``presets.Preset.validate``,
on the controller and on every xdist worker), before anything is provisioned. A mistake is
a ``ConfigError`` naming the key, where it came from (the preset file, ``--ale-provider-opt``,
``--ale-agent-opt``), the valid keys and the nearest one (``did you mean isolation?``).
The implementations then read typed attributes (``self.options.isolation``).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError
from .staging import DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_OUTPUT_FILES

#: where options handed to a constructor in code come from (not a preset)
IN_CODE = "the options passed in code"


class OptionsModel(BaseModel):
    """The shared base: no unknown key, numbers accepted where text is asked for (YAML
    reads ``version: 2.1`` as a number), the values fixed once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    @classmethod
    def validated(
        cls,
        data: Mapping[str, Any] | OptionsModel | None = None,
        *,
        owner: str | None = None,
        origins: Mapping[str, str] | None = None,
        source: str = IN_CODE,
    ) -> Self:
        """``data`` checked against this model; ``ConfigError`` naming every mistake.

        ``origins`` says where each key came from (default ``source``): the preset file's
        path, or the command-line option that set it."""
        if isinstance(data, cls):
            return data
        if isinstance(data, OptionsModel):
            data = data.model_dump(exclude_unset=True)
        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            raise ConfigError(describe(cls, exc, owner or cls.__name__, origins or {}, source)) from None


class ProviderOptions(OptionsModel):
    """What every provider accepts."""

    #: keep sandboxes after their trial, for debugging (``--ale-keep`` sets it)
    keep: bool = False

    def capabilities(self, declared: frozenset[str]) -> frozenset[str]:
        """What the provider can host with these options: its class's ``capabilities``,
        widened by options that say what its machines have (``gpu: true``)."""
        return declared


class GpuFlag(ProviderOptions):
    """For providers whose machines may have GPUs that only the preset knows of."""

    #: the engine, hosts or instance types have a GPU: tasks whose card asks for one run
    gpu: bool = False

    def capabilities(self, declared: frozenset[str]) -> frozenset[str]:
        return (declared | {"gpu"}) if self.gpu else declared


class OutputCaps(ProviderOptions):
    """Caps on what ``collect`` brings out of a sandbox's ``output/``."""

    max_output_mb: float = Field(DEFAULT_MAX_OUTPUT_BYTES / 1024**2, gt=0)
    max_output_files: int = Field(DEFAULT_MAX_OUTPUT_FILES, gt=0)

    @property
    def max_output_bytes(self) -> int:
        return int(self.max_output_mb * 1024**2)


class AgentOptions(OptionsModel):
    """What every agent accepts."""

    #: the model the harness asks for (``--ale-model`` sets it for every agent)
    model: str | None = None
    #: the harness version to pin and expect (recorded with each trial)
    version: str | None = None


# -- messages -------------------------------------------------------------------------
def describe(
    model: type[BaseModel], exc: ValidationError, owner: str, origins: Mapping[str, str], source: str
) -> str:
    """One message for every mistake in ``exc``: key, origin, valid keys, the near miss."""
    problems = []
    valid: list[str] = []
    for error in exc.errors():
        loc = error["loc"]
        key = ".".join(str(part) for part in loc) or "(options)"
        origin = origins.get(str(loc[0]), source) if loc else source
        where = _model_at(model, loc[:-1]) or model
        fields = sorted(where.model_fields)
        valid = valid or fields  # those of the first mistake's model
        kind = error["type"]
        if kind == "extra_forbidden":
            problems.append(f"Unknown option {key!r} (from {origin}){_near(str(loc[-1]), fields)}")
        elif kind == "missing":
            problems.append(f"Option {key!r} is required (missing from {origin}).")
        else:
            message = str(error["ctx"]["error"]) if kind == "value_error" else error["msg"]
            choices = _choices(where, str(loc[-1])) if loc and kind == "literal_error" else []
            near = _near(str(error["input"]), choices)
            problems.append(
                f"Option {key!r} = {error['input']!r} (from {origin}): {message}{near}"
                if loc
                else f"{message} (from {origin})."
            )
    return f"{owner}: " + " ".join(problems) + f" Valid options: {', '.join(valid)}."


def _near(word: str, candidates: list[str]) -> str:
    """``, did you mean X?`` for the closest of ``candidates``, else a full stop."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f", did you mean {close[0]}?" if close else "."


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The models an annotation holds (``X``, ``X | None``, ``list[X]``, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models(arg)


def _model_at(model: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The nested model that the error at ``path`` (the parent of a key) is in."""
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue  # a list index or a union member's tag
        found = next(_models(field.annotation), None)
        if found is None:
            return None
        model = found
    return model


def _choices(model: type[BaseModel], name: str) -> list[str]:
    field = model.model_fields.get(name)
    annotation = field.annotation if field else None
    while typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next((a for a in typing.get_args(annotation) if typing.get_origin(a) is Literal), None)
    return [str(a) for a in typing.get_args(annotation)] if typing.get_origin(annotation) is Literal else []
