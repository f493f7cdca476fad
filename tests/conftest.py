"""Test-wide fixtures live in tests/support/*, one module per concern, loaded as plugins."""

pytest_plugins = [
    "tests.support.shared",
    "tests.support.models",
    "tests.support.engines",
]
