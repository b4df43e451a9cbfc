"""Pagination shared by every list endpoint."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination

from quetzal.api.filters import parse_query
from quetzal.forms import Form, StrictIntegerField

MAX_PAGE_SIZE = 500
MAX_PAGE = 1_000_000


class PageParameters(Form):
    page = StrictIntegerField(required=False, min_value=1, max_value=MAX_PAGE)
    page_size = StrictIntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)


class Pagination(PageNumberPagination):
    """Page-number pagination with a caller-chosen page size up to 500; bad numbers are a 400."""

    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request) -> int:
        return parse_query(request, PageParameters)["page_size"] or self.page_size

    def get_page_number(self, request, paginator) -> int:
        return parse_query(request, PageParameters)["page"] or 1

    def get_schema_operation_parameters(self, view) -> list[dict]:
        bounds = {self.page_query_param: MAX_PAGE, self.page_size_query_param: MAX_PAGE_SIZE}
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"].update(minimum=1, maximum=bounds[parameter["name"]])
        return parameters
