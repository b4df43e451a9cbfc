"""The desktops app's fixtures (test-driver host, image, template, eager tasks) for the console tests."""

from desktops.tests.conftest import host, image, template, work  # noqa: F401 - shared desktop fixtures
