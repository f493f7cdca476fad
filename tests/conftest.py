"""Test-wide fixtures live in tests/support/*, one module per concern, loaded as plugins."""

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from bridge.scoring import shared_scorers

pytest_plugins = [
    "tests.support.shared",
    "tests.support.models",
    "tests.support.engines",
    "tests.support.opensearch_ml",
    "tests.support.clusters",
]

# The suite shares 2 cores with two JVM nodes: Hypothesis's wall-clock checks (per-example deadline,
# slow data generation) measure the machine's load, not the properties, so they are turned off.
settings.register_profile(
    "bridge",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("bridge")


@pytest.fixture(autouse=True)
def _forget_model_failures() -> Iterator[None]:
    """The model breaker is process-wide: a model one test made unloadable (offline, a dead
    mirror, an empty cache) must not stay refused in the next test, whose environment (cache dir)
    resolves the same name to files that are there."""
    yield
    shared_scorers.breaker.reset()
