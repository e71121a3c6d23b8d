"""The run-config profiles shipped in data/run_configs are valid for the jobs they name
(a typo in a profile would otherwise only surface when a user runs it on a full catalog)."""

import json
from pathlib import Path

import pytest
from dagster import validate_run_config

from pinlanding_assets.definitions import defs

PROFILES = sorted((Path(__file__).resolve().parents[2] / "data" / "run_configs").glob("*.json"))


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_profile_is_valid_run_config_for_its_jobs(profile: Path) -> None:
    per_job = json.loads(profile.read_text())
    assert per_job, f"{profile} is empty"
    for job_name, run_config in per_job.items():
        validate_run_config(defs.resolve_job_def(job_name), run_config)


def test_a_misspelled_setting_is_rejected() -> None:
    with pytest.raises(Exception, match="target_precison"):
        validate_run_config(defs.resolve_job_def("train_model"), {"ops": {"clip_model": {"config": {"target_precison": 0.97}}}})
