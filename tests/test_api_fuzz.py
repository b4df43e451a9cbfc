"""A bounded schemathesis run against the production ASGI server: no server error, no schema violation.

uvicorn serves the test database (PostgreSQL) in a subprocess, the way `make run` serves it; schemathesis
reads /api/schema/ from it and runs every check with a fixed seed, authenticated by a real API token of a
tenant owner (tests/fuzz_world.py). Operations whose rules OpenAPI cannot state are listed with their
reason in tests/schemathesis.toml.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from quetzal.server import asgi_server_command
from tests import fuzz_world
from tests.services import port_open, require

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
SEED = 20261201
MAX_EXAMPLES = 5
RUN_TIMEOUT_S = 420


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_env(tmp_path: Path) -> dict[str, str]:
    db = connection.settings_dict
    env = dict(os.environ)
    # No Redis: the server queues work on Celery's in-memory broker, which nothing consumes, so the run
    # records intent (operations, audit) without booting VMs, and shares nothing with other tests.
    env.pop("REDIS_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE="quetzal.settings.base",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        PASSWORD_HASHERS=",".join(settings.PASSWORD_HASHERS),
        QUETZAL_VAR_DIR=str(tmp_path / "var"),
        BILLING_ENABLED="false",
        LOG_LEVEL="warning",
        # One token makes every call of the run: the budget for automation would answer most of them 429 and leave
        # the endpoints unexplored (desktops/tests/test_api_rate_limit.py is where the budget is tested).
        API_TOKEN_RATE_LIMIT="100000",
        API_RATE_WINDOW_S="1",
    )
    return env


@pytest.fixture
def server(transactional_db, tmp_path):
    require(connection.vendor == "postgresql", "PostgreSQL (the server process shares the test database)")
    port = _free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            asgi_server_command("127.0.0.1", port, quiet=True),
            cwd=ROOT,
            env=_server_env(tmp_path),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while not port_open("127.0.0.1", port) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert process.poll() is None and port_open("127.0.0.1", port), log_path.read_text()[-3000:]
    yield f"http://127.0.0.1:{port}", log_path
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def test_it_survives_a_schemathesis_run_with_every_check(server, tmp_path):
    base, log_path = server
    token = fuzz_world.populate()
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{base}/api/schema/",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--header",
        f"Authorization: Bearer {token}",
    ]
    protected = (
        f"/api/v1/members/{{id}}/={fuzz_world.FUZZER_MEMBERSHIP_ID},/api/v1/tokens/{{id}}/={fuzz_world.FUZZER_TOKEN_ID}"
    )
    env = dict(os.environ, SCHEMATHESIS_HOOKS=str(HERE / "fuzz_hooks.py"), QUETZAL_FUZZ_PROTECTED=protected)
    started = time.monotonic()
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    output = run.stdout + run.stderr
    print(output[-4000:], f"\nfuzz_seconds={time.monotonic() - started:.0f}")
    assert run.returncode == 0, output[-20000:] + "\n--- server log ---\n" + log_path.read_text()[-5000:]
    assert "Tested: " in output and "Server error" not in output
