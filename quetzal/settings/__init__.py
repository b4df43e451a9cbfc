"""Default settings: everything from environment variables, safe for `make run`."""

from quetzal.settings.base import *  # noqa: F403
