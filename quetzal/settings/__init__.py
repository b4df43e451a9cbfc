"""Settings modules: `base` (default, embedded-friendly) and `production`."""
