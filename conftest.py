"""Make the shared fixtures (tests/fixtures.py) visible to every app's tests."""

pytest_plugins = ["tests.fixtures"]
