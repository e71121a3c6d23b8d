"""Run config from the core's settings: each setting is defined once, in a core dataclass.

A stage's Dagster config class (or resource) takes its fields from the core settings
dataclasses it hands to the core: the same names (or a stated run-config name), types,
defaults, and as descriptions the comments written beside them in the core, which the
launchpad shows. `to_core` builds the dataclass back from a config object, so an asset,
a benchmark and a test hand the core the same thing:

    class ModelConfig(with_core_settings(Config, CoreSettings(TrainingConfig, set_by_dagster={...}))):
        eval_max_products: int = 3000  # settings of the asset itself stay here

    training = config.to_core(TrainingConfig, test_share=silver)

A core field that run config cannot carry (an object, or something the asset decides, such
as the silver test share) is named in `set_by_dagster` with how it is set, and `to_core`
requires it; any other field that Dagster's config types cannot hold fails when the class
is built, so a new core setting never silently lacks a run-config path.
"""


import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar, TypeVar

import pydantic
from pydantic import Field

Settings = TypeVar("Settings")
SCALARS = (bool, int, float, str)


@dataclasses.dataclass(frozen=True)
class CoreSettings:
    """One core settings dataclass as fields of a Dagster config class or resource.

    `rename`: core field -> its run-config name (names run config already used, or a name
    clearer beside other stages' fields); `prefix` goes before every other field's name.
    `set_by_dagster`: core field -> how the Dagster layer sets it (not from run config)."""

    settings: type
    rename: Mapping[str, str] = dataclasses.field(default_factory=dict)
    prefix: str = ""
    set_by_dagster: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        names = {f.name for f in dataclasses.fields(self.settings)}
        unknown = (set(self.rename) | set(self.set_by_dagster)) - names
        if unknown:
            raise ValueError(f"{self.settings.__name__} has no fields {sorted(unknown)}")

    def run_name(self, core_name: str) -> str:
        return self.rename.get(core_name, self.prefix + core_name)

    def from_run_config(self) -> list[dataclasses.Field]:
        """The core fields that run config carries."""
        return [f for f in dataclasses.fields(self.settings) if f.name not in self.set_by_dagster]

    def pydantic_fields(self) -> dict[str, tuple[Any, Any]]:
        hints = typing.get_type_hints(self.settings)
        docs = field_docs(self.settings)
        fields = {}
        for f in self.from_run_config():
            kind = run_config_type(hints[f.name], f"{self.settings.__name__}.{f.name}")
            fields[self.run_name(f.name)] = (kind, Field(default=to_run_config(core_default(f)), description=docs.get(f.name)))
        return fields


def core_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"{f.name} has no default: a run-config setting needs one")


def run_config_type(hint: Any, where: str) -> Any:
    """The type Dagster's config holds for a core annotation: tuples become lists."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in SCALARS or hint is type(None):
        return hint
    if origin in (tuple, list) and args:
        items = {a for a in args if a is not Ellipsis}
        if len(items) == 1 and next(iter(items)) in SCALARS:
            return list[next(iter(items))]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(run_config_type(a, where) for a in args)]
    raise TypeError(f"{where}: run config cannot hold {hint!r}; name it in set_by_dagster with how the asset sets it")


def to_run_config(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def to_core_value(value: Any, hint: Any) -> Any:
    wants_tuple = typing.get_origin(hint) is tuple or any(typing.get_origin(a) is tuple for a in typing.get_args(hint))
    return tuple(value) if wants_tuple and isinstance(value, list) else value


@cache
def field_docs(settings: type) -> dict[str, str]:
    """Each field's comments in the dataclass's source: the comment lines right above it
    and the one on its line. Empty when the source is not available."""
    try:
        source = textwrap.dedent(inspect.getsource(settings))
    except (OSError, TypeError):
        return {}
    comments: dict[int, tuple[str, bool]] = {}  # line -> (text, the whole line is the comment)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = (token.string.lstrip("#").strip(), not token.line[: token.start[1]].strip())
    docs = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above, line = [], node.lineno - 1
            while line in comments and comments[line][1]:
                above.insert(0, comments[line][0])
                line -= 1
            beside = [comments[n][0] for n in range(node.lineno, node.end_lineno + 1) if n in comments and not comments[n][1]]
            if above or beside:
                docs[node.target.id] = " ".join(above + beside)
    return docs


class ToCore:
    """What `with_core_settings` adds to a config class."""

    core_settings: ClassVar[tuple[CoreSettings, ...]] = ()

    def to_core(self, settings: type[Settings], **set_by_dagster: Any) -> Settings:
        """The core dataclass `settings` from this config's fields; `set_by_dagster` gives
        the fields the asset sets (all of them are required) and may override others."""
        spec = next((s for s in self.core_settings if s.settings is settings), None)
        if spec is None:
            raise TypeError(f"{type(self).__name__} holds no {settings.__name__}")
        missing = set(spec.set_by_dagster) - set(set_by_dagster)
        if missing:
            raise TypeError(f"{settings.__name__} needs {sorted(missing)} from the asset: " + "; ".join(f"{n}: {spec.set_by_dagster[n]}" for n in sorted(missing)))
        hints = typing.get_type_hints(settings)
        values = {f.name: to_core_value(getattr(self, spec.run_name(f.name)), hints[f.name]) for f in spec.from_run_config()}
        return settings(**(values | set_by_dagster))


def with_core_settings(base: type[pydantic.BaseModel], *settings: CoreSettings) -> type:
    """A subclass of `base` (dagster `Config` or `ConfigurableResource`) with a field for
    every run-config field of `settings` and their `to_core`; subclass it to add the
    asset's own fields."""
    fields: dict[str, tuple[Any, Any]] = {}
    for spec in settings:
        for name, field in spec.pydantic_fields().items():
            if name in fields:
                raise ValueError(f"run-config field {name!r} would come from two core settings; rename one")
            fields[name] = field
    name = "".join(s.settings.__name__ for s in settings) + "Fields"
    model = pydantic.create_model(name, __base__=base, __module__=__name__, **fields)
    return type(name, (model, ToCore), {"__module__": __name__, "__annotations__": {"core_settings": ClassVar[tuple]}, "core_settings": tuple(settings)})
