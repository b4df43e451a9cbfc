"""API base: tenant-scoped viewsets, permissions, errors, pagination."""
