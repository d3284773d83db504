"""Shared fixtures: the bundled sample, the real corpus (optional), an isolated Prefect."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from broadsheet.cli import sample_input_dir
from broadsheet.prefect_env import apply_quiet_prefect_defaults

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIR = Path(os.environ.get("BROADSHEET_CORPUS", REPO_ROOT.parent / "shared" / "corpus"))

# Hypothesis's own timing checks (a deadline per example, slow input generation) failed on a
# loaded two-core machine and say nothing about correctness: speed is measured by the
# benchmark scripts, not by tests.
settings.register_profile(
    "shared_machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared_machine")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The synthetic sample archive bundled with the package."""
    return sample_input_dir()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """``../shared/corpus``; tests that need it are skipped when it is absent."""
    if not (CORPUS_DIR / "real").is_dir():
        pytest.skip(f"real corpus not found at {CORPUS_DIR}")
    return CORPUS_DIR


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A throwaway Prefect home and temporary server, so tests never touch ~/.prefect."""
    apply_quiet_prefect_defaults()
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


@pytest.fixture
def new_prefect_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Prefect home of its own, with no ``PREFECT_`` setting from the environment, as on a
    user's machine before the first run (the folder itself does not exist yet)."""
    for name in [name for name in os.environ if name.startswith("PREFECT_")]:
        monkeypatch.delenv(name)
    home = tmp_path / "prefect-home"
    monkeypatch.setenv("PREFECT_HOME", str(home))
    return home
