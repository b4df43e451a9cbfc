"""The Stripe the billing tests talk to.

`localstripe` (from PyPI, started here as a subprocess on a free port) serves customers,
subscriptions, invoices, payment methods and setup intents, and signs the webhooks it sends.

localstripe predates billing meters, Prices, Checkout and the customer portal, so a small front
server in these tests serves those endpoints itself and passes everything else to localstripe.
The meter endpoints check each request the way Stripe documents it: form-encoded, a secret key,
`event_name` of an active meter, `payload[stripe_customer_id]` of an existing customer,
`payload[value]` a whole number, `identifier` at most 100 characters, `timestamp` within the past
35 days and at most 5 minutes ahead; an identifier already recorded is refused with Stripe's 400
("An event already exists with identifier ...", `Stripe-Should-Retry: false`), and a repeated
`Idempotency-Key` replays the first answer. A Price is also created in localstripe as a metered
Plan with the same id, so subscriptions (which localstripe takes as `items[][plan]`) accept it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from quetzal.server import free_port

SECRET_KEY = "sk_test_quetzal_billing"
WEBHOOK_SECRET = "whsec_quetzal_billing_tests"
MAX_PAST_S = 35 * 24 * 3600
MAX_FUTURE_S = 5 * 60


def wait_for_port(port: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.3):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header the way Stripe (and localstripe) compute it."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class LocalStripe:
    """The localstripe server in a subprocess."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> bool:
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "localstripe", "--port", str(self.port), "--from-scratch"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            return False
        return wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def call(self, method: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A direct request to localstripe (test set-up: payment methods, invoices to pay)."""
        data = urlencode(flatten(params or {})).encode() if params and method != "GET" else None
        query = f"?{urlencode(flatten(params or {}))}" if params and method == "GET" else ""
        request = urllib.request.Request(f"{self.url}{path}{query}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {SECRET_KEY}")
        if data is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise AssertionError(f"localstripe {method} {path}: {error.code} {error.read()!r}") from None


def flatten(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding: a[b]=c, a[0][b]=c."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            pairs.extend(flatten(value, name))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    pairs.extend(flatten(item, f"{name}[{index}]"))
                else:
                    pairs.append((f"{name}[{index}]", str(item)))
        else:
            pairs.append((name, str(value)))
    return pairs


@dataclass
class Recorded:
    """What the front server saw and holds, for the tests to check."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    meters: dict[str, dict] = field(default_factory=dict)
    prices: dict[str, dict] = field(default_factory=dict)
    meter_events: list[dict] = field(default_factory=list)  # accepted events, in order
    duplicate_refusals: list[str] = field(default_factory=list)  # identifiers refused as duplicates
    idempotent_replays: list[str] = field(default_factory=list)
    checkout_sessions: dict[str, dict] = field(default_factory=dict)
    portal_sessions: list[dict] = field(default_factory=list)


class StripeFront(ThreadingHTTPServer):
    """Serves what localstripe lacks; proxies the rest to it."""

    daemon_threads = True

    def __init__(self, localstripe: LocalStripe) -> None:
        self.port = free_port()
        super().__init__(("127.0.0.1", self.port), _Handler)
        self.localstripe = localstripe
        self.lock = threading.Lock()
        self.seen = Recorded()
        self.idempotency: dict[str, tuple[str, int, bytes]] = {}
        # Test knobs: answer the next N meter events only after `stall_s` (they are recorded first).
        self.stall_next_meter_events = 0
        self.stall_s = 0.0
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def reset(self) -> None:
        with self.lock:
            meters = dict(self.seen.meters)
            prices = dict(self.seen.prices)
            self.seen = Recorded(meters=meters, prices=prices)
            self.stall_next_meter_events = 0

    def forget_idempotency_keys(self) -> None:
        """Stripe keeps idempotency keys for 24 hours, identifiers longer: model the gap."""
        with self.lock:
            self.idempotency.clear()

    def meter_total(self, customer_id: str | None = None) -> int:
        with self.lock:
            return sum(
                int(e["payload"]["value"])
                for e in self.seen.meter_events
                if customer_id is None or e["payload"]["stripe_customer_id"] == customer_id
            )

    def complete_checkout(self, session_id: str, card_number: str = "4242424242424242") -> dict:
        """What the customer does on Checkout: save a card; returns the completed session."""
        session = self.seen.checkout_sessions[session_id]
        pm = self.localstripe.call(
            "POST",
            "/v1/payment_methods",
            {"type": "card", "card": {"number": card_number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}},
        )
        self.localstripe.call("POST", f"/v1/payment_methods/{pm['id']}/attach", {"customer": session["customer"]})
        self.localstripe.call(
            "POST", f"/v1/setup_intents/{session['setup_intent']}/confirm", {"payment_method": pm["id"]}
        )
        with self.lock:
            session["status"] = "complete"
        return dict(session)


def _error(status: int, message: str, kind: str = "invalid_request_error", **extra) -> tuple[int, dict, dict]:
    return status, {"error": {"type": kind, "message": message, **extra}}, {}


def _unknown(form: dict[str, str], allowed: set[str]) -> tuple[int, dict, dict] | None:
    for key in form:
        if key not in allowed and not key.startswith("expand["):
            return _error(400, f"Received unknown parameter: {key}", param=key)
    return None


class _Handler(BaseHTTPRequestHandler):
    server: StripeFront

    def log_message(self, *args) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- plumbing -------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.seen.requests.append((method, parts.path))
        if not self.headers.get("Authorization", "").startswith("Bearer sk_"):
            return self._send(*_error(401, "Invalid API Key provided."))
        route = self._route(method, parts.path)
        form_encoded = self.headers.get("Content-Type", "").split(";")[0] == "application/x-www-form-urlencoded"
        if route is not None and method == "POST" and not form_encoded:
            return self._send(*_error(400, "Stripe expects form-encoded parameters."))
        key = self.headers.get("Idempotency-Key") if method == "POST" else None
        fingerprint = hashlib.sha256(body).hexdigest()
        if key:
            with self.server.lock:
                stored = self.server.idempotency.get(key)
            if stored is not None:
                if stored[0] != fingerprint:
                    message = "Keys for idempotent requests can only be used with the same parameters."
                    return self._send(*_error(400, message, kind="idempotency_error"))
                with self.server.lock:
                    self.server.seen.idempotent_replays.append(key)
                return self._send_raw(stored[1], stored[2], {"Idempotent-Replayed": "true"})
        if route is None:
            status, raw, headers = self._proxy(method, body)
        else:
            form = dict(parse_qsl(body.decode() if method == "POST" else parts.query, keep_blank_values=True))
            status, answer, headers = route(form)
            raw = json.dumps(answer).encode()
        if key and status < 500:
            with self.server.lock:
                self.server.idempotency[key] = (fingerprint, status, raw)
        if headers.pop("_stall", None):
            time.sleep(self.server.stall_s)
        self._send_raw(status, raw, headers)

    def _route(self, method: str, path: str):
        segments = path.strip("/").split("/")
        table = {
            ("POST", "v1/billing/meters"): self._create_meter,
            ("GET", "v1/billing/meters"): self._list_meters,
            ("POST", "v1/billing/meter_events"): self._create_meter_event,
            ("POST", "v1/prices"): self._create_price,
            ("POST", "v1/subscriptions"): None,  # rewritten, then proxied
            ("POST", "v1/checkout/sessions"): self._create_checkout,
            ("POST", "v1/billing_portal/sessions"): self._create_portal,
        }
        joined = "/".join(segments)
        if (method, joined) in table:
            return table[(method, joined)]
        if (
            method == "GET"
            and len(segments) == 5
            and segments[:3] == ["v1", "billing", "meters"]
            and segments[4] == "event_summaries"
        ):
            return lambda form: self._event_summaries(segments[3], form)
        if method == "GET" and len(segments) == 4 and segments[:3] == ["v1", "checkout", "sessions"]:
            return lambda form: self._retrieve_checkout(segments[3], form)
        if method == "GET" and len(segments) == 3 and segments[:2] == ["v1", "prices"]:
            return lambda form: self._retrieve_price(segments[2])
        return None

    def _send(self, status: int, answer: dict, headers: dict) -> None:
        self._send_raw(status, json.dumps(answer).encode(), headers)

    def _send_raw(self, status: int, raw: bytes, headers: dict) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("Request-Id", f"req_{secrets.token_hex(6)}")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout test); the work is done regardless

    def _proxy(self, method: str, body: bytes) -> tuple[int, bytes, dict]:
        if method == "POST" and urlsplit(self.path).path == "/v1/subscriptions":
            # localstripe names the price of a subscription item `plan` (its Prices are our Plans).
            pairs = parse_qsl(body.decode(), keep_blank_values=True)
            body = urlencode([(k.replace("][price]", "][plan]"), v) for k, v in pairs]).encode()
        request = urllib.request.Request(f"{self.server.localstripe.url}{self.path}", data=body or None, method=method)
        for name in ("Authorization", "Content-Type"):
            if self.headers.get(name):
                request.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read(), {}
        except urllib.error.HTTPError as error:
            return error.code, error.read(), {}

    def _customer_exists(self, customer_id: str) -> bool:
        try:
            self.server.localstripe.call("GET", f"/v1/customers/{customer_id}")
        except AssertionError:
            return False
        return True

    # --- billing meters -------------------------------------------------------------------

    def _create_meter(self, form: dict[str, str]):
        allowed = {
            "display_name",
            "event_name",
            "default_aggregation[formula]",
            "customer_mapping[event_payload_key]",
            "customer_mapping[type]",
            "value_settings[event_payload_key]",
            "event_time_window",
        }
        if refused := _unknown(form, allowed):
            return refused
        for required in ("display_name", "event_name", "default_aggregation[formula]"):
            if not form.get(required):
                return _error(400, f"Missing required param: {required}.", param=required)
        if form["default_aggregation[formula]"] not in ("sum", "count", "last"):
            return _error(400, "Invalid default_aggregation[formula].")
        if form.get("customer_mapping[type]", "by_id") != "by_id":
            return _error(400, "Invalid customer_mapping[type].")
        with self.server.lock:
            if any(
                m["event_name"] == form["event_name"] and m["status"] == "active"
                for m in self.server.seen.meters.values()
            ):
                return _error(400, f"An active meter with event_name {form['event_name']} already exists.")
            meter = {
                "id": f"mtr_test_{secrets.token_hex(8)}",
                "object": "billing.meter",
                "created": int(time.time()),
                "display_name": form["display_name"],
                "event_name": form["event_name"],
                "status": "active",
                "default_aggregation": {"formula": form["default_aggregation[formula]"]},
                "customer_mapping": {
                    "event_payload_key": form.get("customer_mapping[event_payload_key]", "stripe_customer_id"),
                    "type": "by_id",
                },
                "value_settings": {"event_payload_key": form.get("value_settings[event_payload_key]", "value")},
                "livemode": False,
            }
            self.server.seen.meters[meter["id"]] = meter
        return 200, meter, {}

    def _list_meters(self, form: dict[str, str]):
        with self.server.lock:
            data = [m for m in self.server.seen.meters.values() if form.get("status") in (None, m["status"])]
        return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/billing/meters"}, {}

    def _create_meter_event(self, form: dict[str, str]):
        allowed = {"event_name", "payload[stripe_customer_id]", "payload[value]", "identifier", "timestamp"}
        if refused := _unknown(form, allowed):
            return refused
        for required in ("event_name", "payload[stripe_customer_id]", "payload[value]"):
            if not form.get(required):
                return _error(400, f"Missing required param: {required}.", param=required)
        with self.server.lock:
            known = any(
                m["event_name"] == form["event_name"] and m["status"] == "active"
                for m in self.server.seen.meters.values()
            )
        if not known:
            return _error(400, f"No active meter found for event_name {form['event_name']}.", param="event_name")
        if not form["payload[value]"].isdigit():
            return _error(400, "payload[value] must be a whole number.", param="payload[value]")
        identifier = form.get("identifier") or f"gen_{secrets.token_hex(8)}"
        if len(identifier) > 100:
            return _error(400, "identifier is longer than 100 characters.", param="identifier")
        now = int(time.time())
        timestamp = int(form.get("timestamp") or now)
        if not now - MAX_PAST_S <= timestamp <= now + MAX_FUTURE_S:
            return _error(
                400, "timestamp must be within the past 35 days and at most 5 minutes ahead.", param="timestamp"
            )
        if not self._customer_exists(form["payload[stripe_customer_id]"]):
            return _error(
                400, f"No such customer: '{form['payload[stripe_customer_id]']}'", param="payload[stripe_customer_id]"
            )
        with self.server.lock:
            if any(e["identifier"] == identifier for e in self.server.seen.meter_events):
                self.server.seen.duplicate_refusals.append(identifier)
                status, answer, _ = _error(400, f"An event already exists with identifier {identifier}.")
                return status, answer, {"Stripe-Should-Retry": "false"}
            event = {
                "object": "billing.meter_event",
                "created": now,
                "event_name": form["event_name"],
                "identifier": identifier,
                "livemode": False,
                "payload": {
                    "stripe_customer_id": form["payload[stripe_customer_id]"],
                    "value": form["payload[value]"],
                },
                "timestamp": timestamp,
            }
            self.server.seen.meter_events.append(event)
            stall = self.server.stall_next_meter_events > 0
            if stall:
                self.server.stall_next_meter_events -= 1
        return 200, event, ({"_stall": True} if stall else {})

    def _event_summaries(self, meter_id: str, form: dict[str, str]):
        with self.server.lock:
            meter = self.server.seen.meters.get(meter_id)
        if meter is None:
            return _error(404, f"No such billing meter: '{meter_id}'", param="id")
        for required in ("customer", "start_time", "end_time"):
            if not form.get(required):
                return _error(400, f"Missing required param: {required}.", param=required)
        start, end = int(form["start_time"]), int(form["end_time"])
        if start % 60 or end % 60:
            return _error(400, "start_time and end_time must be aligned with minute boundaries.")
        with self.server.lock:
            total = sum(
                int(e["payload"]["value"])
                for e in self.server.seen.meter_events
                if e["event_name"] == meter["event_name"]
                and e["payload"]["stripe_customer_id"] == form["customer"]
                and start <= e["timestamp"] < end
            )
        summary = {
            "id": f"mtrusg_test_{secrets.token_hex(6)}",
            "object": "billing.meter_event_summary",
            "aggregated_value": float(total),
            "start_time": start,
            "end_time": end,
            "livemode": False,
            "meter": meter_id,
        }
        return (
            200,
            {
                "object": "list",
                "data": [summary],
                "has_more": False,
                "url": f"/v1/billing/meters/{meter_id}/event_summaries",
            },
            {},
        )

    # --- prices (kept as localstripe Plans) -------------------------------------------------

    def _create_price(self, form: dict[str, str]):
        allowed = {
            "currency",
            "unit_amount_decimal",
            "recurring[interval]",
            "recurring[usage_type]",
            "recurring[meter]",
            "product_data[name]",
        }
        if refused := _unknown(form, allowed):
            return refused
        if form.get("recurring[usage_type]") == "metered":
            with self.server.lock:
                if form.get("recurring[meter]") not in self.server.seen.meters:
                    return _error(400, "A metered price needs recurring[meter] of an existing meter.")
        price_id = f"price_test_{secrets.token_hex(8)}"
        plan = self.server.localstripe.call(
            "POST",
            "/v1/plans",
            {
                "id": price_id,
                "amount": 0,
                "currency": form["currency"],
                "interval": form["recurring[interval]"],
                "usage_type": form.get("recurring[usage_type]", "licensed"),
                "product": {"name": form.get("product_data[name]", "Price")},
            },
        )
        price = {
            "id": price_id,
            "object": "price",
            "active": True,
            "billing_scheme": "per_unit",
            "currency": form["currency"],
            "product": plan["product"],
            "unit_amount_decimal": form.get("unit_amount_decimal"),
            "recurring": {
                "interval": form["recurring[interval]"],
                "usage_type": form.get("recurring[usage_type]", "licensed"),
                "meter": form.get("recurring[meter]"),
            },
            "type": "recurring",
        }
        with self.server.lock:
            self.server.seen.prices[price_id] = price
        return 200, price, {}

    def _retrieve_price(self, price_id: str):
        with self.server.lock:
            price = self.server.seen.prices.get(price_id)
        return (200, price, {}) if price else _error(404, f"No such price: '{price_id}'")

    # --- Checkout and the customer portal ---------------------------------------------------

    def _create_checkout(self, form: dict[str, str]):
        if refused := _unknown(form, {"mode", "customer", "currency", "success_url", "cancel_url"}):
            return refused
        if form.get("mode") != "setup":
            return _error(400, "These tests only open Checkout in setup mode.")
        if not form.get("success_url") or not form.get("customer") or not form.get("currency"):
            return _error(400, "Missing required param: success_url, customer or currency.")
        if not self._customer_exists(form["customer"]):
            return _error(400, f"No such customer: '{form['customer']}'", param="customer")
        intent = self.server.localstripe.call("POST", "/v1/setup_intents", {"customer": form["customer"]})
        session_id = f"cs_test_{secrets.token_hex(10)}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "setup",
            "status": "open",
            "customer": form["customer"],
            "currency": form["currency"],
            "setup_intent": intent["id"],
            "success_url": form["success_url"],
            "cancel_url": form.get("cancel_url"),
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
        }
        with self.server.lock:
            self.server.seen.checkout_sessions[session_id] = session
        return 200, session, {}

    def _retrieve_checkout(self, session_id: str, form: dict[str, str]):
        with self.server.lock:
            session = dict(self.server.seen.checkout_sessions.get(session_id) or {})
        if not session:
            return _error(404, f"No such checkout session: '{session_id}'")
        if "setup_intent" in form.values():
            session["setup_intent"] = self.server.localstripe.call(
                "GET", f"/v1/setup_intents/{session['setup_intent']}"
            )
        return 200, session, {}

    def _create_portal(self, form: dict[str, str]):
        if refused := _unknown(form, {"customer", "return_url"}):
            return refused
        if not self._customer_exists(form.get("customer", "")):
            return _error(400, f"No such customer: '{form.get('customer')}'", param="customer")
        session = {
            "id": f"bps_test_{secrets.token_hex(8)}",
            "object": "billing_portal.session",
            "customer": form["customer"],
            "return_url": form.get("return_url"),
            "url": f"https://billing.stripe.test/p/session/{secrets.token_hex(8)}",
        }
        with self.server.lock:
            self.server.seen.portal_sessions.append(session)
        return 200, session, {}


class WebhookInbox(ThreadingHTTPServer):
    """Receives the webhooks localstripe sends, keeping each raw body and its signature."""

    daemon_threads = True

    def __init__(self) -> None:
        self.port = free_port()
        super().__init__(("127.0.0.1", self.port), _InboxHandler)
        self.deliveries: list[tuple[bytes, str]] = []
        self.condition = threading.Condition()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def wait_for(self, event_type: str, object_id: str, timeout_s: float = 15.0) -> tuple[bytes, str]:
        """The delivery of `event_type` about `object_id` (raw body, Stripe-Signature)."""
        deadline = time.monotonic() + timeout_s
        with self.condition:
            while True:
                for body, signature in self.deliveries:
                    event = json.loads(body)
                    if event["type"] == event_type and event["data"]["object"].get("id") == object_id:
                        return body, signature
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"localstripe sent no {event_type} for {object_id}")
                self.condition.wait(remaining)


class _InboxHandler(BaseHTTPRequestHandler):
    server: WebhookInbox

    def log_message(self, *args) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.condition:
            self.server.deliveries.append((body, self.headers.get("Stripe-Signature", "")))
            self.server.condition.notify_all()
        self.send_response(200)
        self.end_headers()


@dataclass
class StripeWorld:
    """localstripe, the front server the SDK points at, and the webhook inbox."""

    localstripe: LocalStripe
    front: StripeFront
    inbox: WebhookInbox

    @property
    def api_base(self) -> str:
        return self.front.url


def start_world() -> StripeWorld | None:
    """Start everything, or None when localstripe cannot run here."""
    localstripe = LocalStripe()
    if not localstripe.start():
        localstripe.stop()
        return None
    front, inbox = StripeFront(localstripe), WebhookInbox()
    front.start()
    inbox.start()
    config = urllib.request.Request(
        f"{localstripe.url}/_config/webhooks/quetzal",
        data=urlencode({"url": inbox.url, "secret": WEBHOOK_SECRET}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(config, timeout=10):
        pass
    return StripeWorld(localstripe=localstripe, front=front, inbox=inbox)


def stop_world(world: StripeWorld) -> None:
    world.front.stop()
    world.inbox.stop()
    world.localstripe.stop()
