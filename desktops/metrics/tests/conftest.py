"""The desktops app's fixtures (test-driver and QEMU hosts, image, templates, eager tasks) for the metrics tests."""

from desktops.tests.conftest import demo_template, host, image, qemu_host, template, work  # noqa: F401 - shared fixtures
