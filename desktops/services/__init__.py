"""Business logic of desktops: requests (web tier), execution (workers), pools, idle, reconcile."""
