"""Quetzal: self-hosted multi-tenant cloud desktops."""

from quetzal.celery import app as celery_app

__all__ = ["celery_app"]
