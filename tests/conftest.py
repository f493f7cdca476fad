"""Test-wide fixtures live in tests/support/*, one module per concern, loaded as plugins."""

from hypothesis import HealthCheck, settings

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
