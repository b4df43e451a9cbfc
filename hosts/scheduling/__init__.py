"""Placement internals: the request types, the SQL filters and the weighers (hosts.scheduler is the API)."""
