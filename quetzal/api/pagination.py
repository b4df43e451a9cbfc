"""Pagination shared by every list endpoint."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """Page-number pagination with a caller-chosen page size up to 500."""

    page_size_query_param = "page_size"
    max_page_size = 500
