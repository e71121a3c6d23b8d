"""Preflight: what `make run` needs from the machine, checked in its first second.

Without it a bare machine trains for minutes and then fails at the last step (Spark had no
Java). Each check returns one line per problem, saying what is wrong and what to do:

* the Python version, against the project's `requires-python` (pyproject.toml, read from
  the installed package's metadata: the one place it is written);
* a Java that Spark supports (`java_runtime.find_java_runtime`, which runs its `java -version`);
* the catalog: it exists, is a table we know (`catalog.locate_catalog`) and is readable;
* the data home (and the Dagster home) can be written.
"""

from __future__ import annotations

import operator
import sys
import tempfile
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .catalog import CatalogError, locate_catalog
from .java_runtime import JAVA_SHIM_HOME, SPARK_LAUNCHER_MODULE, JavaRuntimeError, find_java_runtime

DISTRIBUTION = "pinlanding"  # the name in pyproject.toml's [project]
_COMPARISONS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt}


@dataclass(frozen=True)
class PreflightReport:
    problems: tuple[str, ...]  # each one line; any problem stops the run
    notes: tuple[str, ...]  # worth saying, not wrong (which Java, and any passed over)

    @property
    def ok(self) -> bool:
        return not self.problems


def python_problems(version: tuple[int, ...] = tuple(sys.version_info[:3]), requires: str | None = None) -> list[str]:
    """The running Python against `requires` (default: the installed project's requires-python)."""
    if requires is None:
        try:
            requires = metadata.metadata(DISTRIBUTION)["Requires-Python"] or ""
        except metadata.PackageNotFoundError:
            return [f"the {DISTRIBUTION} package is not installed in {sys.executable}: run `make install`"]
    unmet = []
    for clause in filter(None, (c.strip() for c in requires.split(","))):
        op = next((o for o in sorted(_COMPARISONS, key=len, reverse=True) if clause.startswith(o)), None)
        if op is None:
            return [f"cannot read requires-python clause {clause!r} (supported: {' '.join(_COMPARISONS)})"]
        bound = tuple(int(part) for part in clause[len(op):].strip().split("."))
        if not _COMPARISONS[op](tuple(version[: len(bound)]), bound):
            unmet.append(clause)
    if unmet:
        running = ".".join(map(str, version))
        return [f"Python {running} does not meet requires-python {requires!r}: install Python 3.11 and run `make install` (PYTHON=python3.11)"]
    return []


def java_problems(environ: MutableMapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """(problems, notes): no Java Spark can use is a problem; which one will be used, and
    why others were passed over, are notes."""
    try:
        runtime = find_java_runtime(environ)
    except JavaRuntimeError as error:
        return [str(error)], []
    trimmed = f" (trimmed runtime: run through {JAVA_SHIM_HOME}, without {SPARK_LAUNCHER_MODULE})" if runtime.needs_shim else ""
    notes = [f"Java {runtime.major} for Spark from {runtime.source}: {runtime.home}{trimmed}"]
    notes += [f"passed over {reason}" for reason in runtime.passed_over if not reason.endswith(("not set", "no java on PATH"))]
    return [], notes


def catalog_problems(location: Path | str, shard_column: str | None = None) -> list[str]:
    """The catalog exists, holds a table we know, and that table can be read."""
    try:
        table = locate_catalog(location, shard_column)
    except CatalogError as error:
        return [f"catalog: {error}"]
    try:
        with table.table_path.open("rb") as handle:
            handle.read(1)
    except OSError as error:
        return [f"catalog: cannot read {table.table_path}: {error.strerror or error}"]
    return []


def writable_problems(label: str, directory: Path) -> list[str]:
    """`directory` (or, before it exists, the nearest folder above it that does) takes a new file."""
    existing = Path(directory).expanduser().absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return [f"{label} {directory} cannot be made: {existing} is not a directory"]
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return [f"{label} {directory} is not writable ({existing}: {error.strerror or error}): set PINLANDING_HOME to a writable folder"]
    return []


def preflight(
    catalog_location: Path | str,
    shard_column: str | None,
    writable_dirs: Mapping[str, Path],
    environ: MutableMapping[str, str] | None = None,
) -> PreflightReport:
    """Every check, every problem (not only the first), so one attempt shows all there is to fix."""
    problems = python_problems()
    java, notes = java_problems(environ)
    problems += java + catalog_problems(catalog_location, shard_column)
    for label, directory in writable_dirs.items():
        problems += writable_problems(label, directory)
    return PreflightReport(tuple(problems), tuple(notes))
