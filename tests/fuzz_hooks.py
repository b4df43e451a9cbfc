"""Schemathesis hooks of the API fuzz: keep the fuzzer from removing its own access mid-run.

The fuzzer changes and deletes members and tokens by id, and learns ids from list responses; a run that
revoked its own token or removed its own membership would test nothing but 401 and 403 afterwards. Its
own ids come in QUETZAL_FUZZ_PROTECTED ("/api/v1/members/{id}/=7,/api/v1/tokens/{id}/=8"); a writing
request aimed at one of them goes to id 0 instead, which exists nowhere (404).
"""

from __future__ import annotations

import os

import schemathesis

PROTECTED = dict(item.split("=") for item in os.environ.get("QUETZAL_FUZZ_PROTECTED", "").split(",") if item)


@schemathesis.hook
def map_case(context, case):
    own_id = PROTECTED.get(case.operation.path)
    if own_id and case.method.upper() != "GET" and str((case.path_parameters or {}).get("id")) == own_id:
        case.path_parameters["id"] = 0
    return case
