"""The HTTP contract: roles, the decision and event calls, catalogue CRUD, and bad input that
gets a 4xx naming the field while nothing stored changes."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.schemas import CandidateOut, ChosenOfferOut, DecisionOut
from decisioning.budgets import INITIAL_PRICE
from tests.api.conftest import CONTEXT, Api
from tests.conftest import open_engine

OFFER_BODY = {
    "name": "Card",
    "product": "card",
    "category": "cards",
    "channels": ["sms"],
    "value": 10,
}


def test_decision_contract(api: Api) -> None:
    response = api.decide(limit=2, explain=True)
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"decision_id", "offers", "policy", "policy_version", "latency_ms"}
    assert [o["rank"] for o in body["offers"]] == [1, 2]
    for shown in body["offers"]:
        assert set(shown) >= {"offer_id", "rank", "score", "propensity"}
        assert 0 < shown["propensity"] <= 1
    assert {c["offer_id"] for c in body["candidates"]} == {"loan", "card"}
    logged = api.call("GET", f"/v1/decisions/{body['decision_id']}", role="analyst").json()
    assert [o["offer_id"] for o in logged["offers"]] == [o["offer_id"] for o in body["offers"]]


@pytest.mark.parametrize("explain", [True, False])
def test_the_decision_answer_is_exactly_the_documented_model(api: Api, explain: bool) -> None:
    """The route writes its JSON itself: every field of ``DecisionOut``, none other, each as
    pydantic would write it (the time in UTC with a ``Z``)."""
    response = api.decide(limit=2, explain=explain)
    body = response.json()
    assert DecisionOut.model_validate_json(response.content).model_dump(mode="json") == body
    assert list(body) == list(DecisionOut.model_fields)
    assert body["created_at"].endswith("Z")
    assert [list(o) for o in body["offers"]] == [list(ChosenOfferOut.model_fields)] * 2
    if explain:
        assert all(list(c) == list(CandidateOut.model_fields) for c in body["candidates"])
    else:
        assert body["candidates"] is None


def test_empty_offers_is_a_valid_answer(api: Api) -> None:
    response = api.decide(
        context={"age": 40}
    )  # no risk assessment, both offers are R1 ... still fine
    assert response.status_code == 200
    response = api.decide(channel="rm_call")
    assert response.status_code == 200 and response.json()["offers"] == []


def test_events_single_batch_and_replay(api: Api) -> None:
    decision = api.decide().json()
    offer_id = decision["offers"][0]["offer_id"]
    one = {
        "event_id": "e-1",
        "decision_id": decision["decision_id"],
        "offer_id": offer_id,
        "type": "click",
    }
    assert api.call("POST", "/v1/events", json=one).json() == {"stored": 1, "duplicates": 0}
    batch = {"events": [one, {**one, "event_id": "e-2", "type": "convert", "value": 120.5}]}
    assert api.call("POST", "/v1/events", json=batch).json() == {"stored": 1, "duplicates": 1}
    assert api.counts()["events"] == 2


@pytest.mark.parametrize(
    ("role", "method", "path", "status"),
    [
        (None, "POST", "/v1/decisions", 401),
        ("analyst", "POST", "/v1/decisions", 403),
        ("marketer", "POST", "/v1/events", 403),
        ("channel", "PUT", "/v1/offers/x", 403),
        ("analyst", "PUT", "/v1/offers/x", 403),
        ("channel", "POST", "/v1/keys", 403),
        ("marketer", "POST", "/v1/keys", 403),
    ],
)
def test_roles(api: Api, role: str | None, method: str, path: str, status: int) -> None:
    assert api.call(method, path, role=role, json={}).status_code == status


def test_unknown_key_is_rejected(api: Api) -> None:
    response = api.call(
        "POST", "/v1/decisions", role=None, headers={"Authorization": "Bearer dk_nope"}, json={}
    )
    assert response.status_code == 401 and response.json()["error"]["field"] == "Authorization"


def test_offer_crud_and_the_decision_sees_it(api: Api) -> None:
    assert api.call("PUT", "/v1/offers/card-2", role="marketer", json=OFFER_BODY).status_code == 201
    assert (
        api.call(
            "PUT", "/v1/offers/card-2", role="marketer", json={**OFFER_BODY, "value": 5000}
        ).status_code
        == 200
    )
    assert api.call("GET", "/v1/offers/card-2", role="analyst").json()["value"] == 5000
    assert "card-2" in {o["offer_id"] for o in api.call("GET", "/v1/offers", role="analyst").json()}
    assert api.decide().json()["offers"][0]["offer_id"] == "card-2"  # this worker sees it at once
    assert api.call("DELETE", "/v1/offers/card-2", role="marketer").status_code == 204
    assert api.call("GET", "/v1/offers/card-2", role="analyst").status_code == 404


def test_budget_and_contact_policy_round_trip(api: Api) -> None:
    budget = {
        "scope": "offer",
        "target_id": "loan",
        "kind": "count",
        "amount": 2,
        "flight_start": "2020-01-01T00:00:00Z",
        "flight_end": "2100-01-01T00:00:00Z",
        "pacing": "asap",
    }
    created = api.call("PUT", "/v1/budgets/loan-b", role="marketer", json=budget)
    assert created.status_code == 201 and created.json()["remaining"] == 2
    for i in range(3):
        api.decide(customer_id=f"c-{i}")
    state = api.call("GET", "/v1/budgets/loan-b", role="analyst").json()
    assert state["spent"] == 2 and state["remaining"] == 0 and state["price"] is None
    dual = {**budget, "target_id": "card", "pacing": "dual"}
    priced = api.call("PUT", "/v1/budgets/card-b", role="marketer", json=dual).json()
    assert priced["price"] == INITIAL_PRICE  # until the periodic job steps it
    policy = {
        "channel_caps": {"sms": {"per_day": 1, "per_week": None}},
        "total_per_week": 5,
        "offer_max_contacts": None,
        "offer_window_days": 7,
        "refusal_cooldown_days": 14,
        "quiet_hours": {"sms": {"start": "21:00", "end": "08:00"}},
    }
    assert api.call("PUT", "/v1/contact-policy", role="marketer", json=policy).json() == policy
    assert api.call("GET", "/v1/contact-policy", role="analyst").json() == policy


def test_profile_attributes_merge_under_the_request_context(api: Api) -> None:
    api.call(
        "PUT",
        "/v1/offers/fund",
        role="marketer",
        json={**OFFER_BODY, "product": "fund", "risk_level": "R4", "value": 9000},
    )
    profile = api.call(
        "PUT", "/v1/customers/c-9", json={"attributes": {"risk_tolerance": "C5", "age": 50}}
    )
    assert profile.status_code == 200
    assert api.decide(customer_id="c-9", context={}).json()["offers"][0]["offer_id"] == "fund"
    overridden = api.decide(
        customer_id="c-9", context={"risk_tolerance": "C1"}, explain=True
    ).json()
    assert {c["offer_id"]: c["reason"] for c in overridden["candidates"]}[
        "fund"
    ] == "UNSUITABLE_RISK"


BAD_REQUESTS = [
    # (method, path, role, raw body, status, field)
    ("POST", "/v1/decisions", "channel", '{"customer_id": "c-1", "channel": "sms"', 400, "body"),
    (
        "POST",
        "/v1/decisions",
        "channel",
        '{"customer_id": "c-1", "channel": "fax"}',
        422,
        "channel",
    ),
    (
        "POST",
        "/v1/decisions",
        "channel",
        '{"customer_id": "c-1", "channel": "sms", "x": 1}',
        422,
        "x",
    ),
    ("POST", "/v1/decisions", "channel", '{"channel": "sms"}', 422, "customer_id"),
    (
        "POST",
        "/v1/decisions",
        "channel",
        '{"customer_id": "c-1", "channel": "sms", "limit": 0}',
        422,
        "limit",
    ),
    (
        "POST",
        "/v1/decisions",
        "channel",
        '{"customer_id": "c-1", "channel": "sms", "context": {"a": NaN}}',
        422,
        "context.a",
    ),
    (
        "POST",
        "/v1/decisions",
        "channel",
        '{"customer_id": "c-1", "channel": "sms", "context": {"a": Infinity}}',
        422,
        "context.a",
    ),
    (
        "POST",
        "/v1/decisions",
        "channel",
        '{"customer_id": "c-1", "channel": "sms", "context": {"a": {"b": 1}}}',
        422,
        "context.a",
    ),
    (
        "POST",
        "/v1/decisions",
        "channel",
        json.dumps(
            {"customer_id": "c-1", "channel": "sms", "context": {f"k{i}": i for i in range(101)}}
        ),
        422,
        "context",
    ),
    (
        "POST",
        "/v1/decisions",
        "channel",
        '{"customer_id": "c-1", "channel": "sms", "context": {"products": ["p", Infinity]}}',
        422,
        "context.products[1]",
    ),
    (
        "POST",
        "/v1/decisions",
        "channel",
        json.dumps({"customer_id": "c-1", "channel": "sms", "context": {"products": [[]]}}),
        422,
        "context.products[0]",
    ),
    (
        "POST",
        "/v1/decisions",
        "channel",
        json.dumps({"customer_id": "c-1", "channel": "sms", "context": {"p": ["x"] * 101}}),
        422,
        "context.p",
    ),
    (
        "POST",
        "/v1/decisions",
        "channel",
        json.dumps({"customer_id": "c-1", "channel": "sms", "context": {"note": "x" * 257}}),
        422,
        "context.note",
    ),
    (
        "POST",
        "/v1/decisions",
        "channel",
        json.dumps({"customer_id": "c-1", "channel": "sms", "context": {"k" * 65: 1}}),
        422,
        "context." + "k" * 65,
    ),
    (
        "POST",
        "/v1/decisions",
        "channel",
        json.dumps({"customer_id": "c-1", "channel": "sms", "context": {"risk_tolerance": "C9"}}),
        422,
        "context.risk_tolerance",
    ),
    (
        "POST",
        "/v1/events",
        "channel",
        '{"event_id": "e", "decision_id": "nope", "offer_id": "loan", "type": "click"}',
        422,
        "events[0].decision_id",
    ),
    (
        "POST",
        "/v1/events",
        "channel",
        '{"event_id": "e", "decision_id": "d", "offer_id": "loan", "type": "buy"}',
        422,
        "type",
    ),
    (
        "PUT",
        "/v1/offers/bad",
        "marketer",
        json.dumps({**OFFER_BODY, "eligibility": {"attr": "age", "op": "~", "value": 1}}),
        422,
        "eligibility.op",
    ),
    ("PUT", "/v1/offers/bad", "marketer", json.dumps({**OFFER_BODY, "value": -1}), 422, "value"),
    (
        "PUT",
        "/v1/offers/bad",
        "marketer",
        json.dumps({**OFFER_BODY, "campaign_id": "ghost"}),
        422,
        "campaign_id",
    ),
    (
        "PUT",
        "/v1/offers/bad",
        "marketer",
        '{"name": "x", "product": "p", "category": "c", "channels": ["sms"], "value": NaN}',
        422,
        "value",
    ),
    (
        "PUT",
        "/v1/budgets/b",
        "marketer",
        json.dumps(
            {
                "scope": "offer",
                "target_id": "loan",
                "kind": "count",
                "amount": 5,
                "flight_start": "2026-02-01T00:00:00Z",
                "flight_end": "2026-01-01T00:00:00Z",
            }
        ),
        422,
        "flight_end",
    ),
    (
        "PUT",
        "/v1/budgets/b",
        "marketer",
        json.dumps(
            {
                "scope": "offer",
                "target_id": "ghost",
                "kind": "count",
                "amount": 5,
                "flight_start": "2026-01-01T00:00:00Z",
                "flight_end": "2026-02-01T00:00:00Z",
            }
        ),
        422,
        "target_id",
    ),
    (
        "PUT",
        "/v1/budgets/b",
        "marketer",
        json.dumps(
            {
                "scope": "offer",
                "target_id": "loan",
                "kind": "count",
                "amount": 5,
                "flight_start": "2026-01-01T00:00:00",
                "flight_end": "2026-02-01T00:00:00Z",
            }
        ),
        422,
        "flight_start",
    ),
    (
        "PUT",
        "/v1/contact-policy",
        "marketer",
        '{"channel_caps": {"fax": {"per_day": 1}}}',
        422,
        "channel_caps.fax",
    ),
    (
        "PUT",
        "/v1/contact-policy",
        "marketer",
        '{"quiet_hours": {"sms": {"start": "25:00", "end": "08:00"}}}',
        422,
        "quiet_hours.sms.start",
    ),
    # Beyond what a customer's contact history keeps (ContactHistory).
    (
        "PUT",
        "/v1/contact-policy",
        "marketer",
        '{"offer_max_contacts": 101}',
        422,
        "offer_max_contacts",
    ),
    (
        "PUT",
        "/v1/contact-policy",
        "marketer",
        '{"channel_caps": {"sms": {"per_week": 1001}}}',
        422,
        "channel_caps.sms.per_week",
    ),
]


@pytest.mark.parametrize(("method", "path", "role", "raw", "status", "field"), BAD_REQUESTS)
def test_bad_input_names_the_field_and_changes_nothing(
    api: Api, method: str, path: str, role: str, raw: str, status: int, field: str
) -> None:
    before = api.counts()
    policy_before = api.call("GET", "/v1/contact-policy", role="analyst").json()
    response = api.call(
        method, path, role=role, content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field
    assert api.counts() == before
    assert api.call("GET", "/v1/contact-policy", role="analyst").json() == policy_before


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        (b"", "application/json", 422, "Field required"),
        (b'{"customer_id": "c-1", "channel": "sms"}', "text/plain", 422, "dictionary"),
        (b'{"customer_id": "c-1", "channel": "sms"}', "application/vnd.bank+json", 200, None),
        (b'{"customer_id": "c-1", "channel": "sms"}', None, 200, None),
    ],
)
def test_the_decision_body_is_read_as_fastapi_reads_bodies(
    api: Api, content: bytes, content_type: str | None, status: int, message: str | None
) -> None:
    """The decision route parses its body itself: JSON under any JSON content type or none,
    a 422 naming the body when it is empty or of another type."""
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.call("POST", "/v1/decisions", content=content, headers=headers)
    assert response.status_code == status, response.text
    if message is not None:
        assert response.json()["error"]["field"] == "body"
        assert message in response.json()["error"]["message"]


def test_the_decision_route_checks_the_key_before_the_body(api: Api) -> None:
    before = api.counts()
    for headers in ({}, {"Authorization": "Bearer dk_nope"}, {"Authorization": "Basic abc"}):
        response = api.call("POST", "/v1/decisions", role=None, content=b"{", headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["field"] == "Authorization"
    response = api.call("POST", "/v1/decisions", role="analyst", content=b"{")
    assert response.status_code == 403
    assert api.counts() == before


@pytest.mark.parametrize("path", ["/v1/events", "/v1/decisions"])
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "streamed"])
def test_oversized_body_is_413(api: Api, path: str, declared: bool) -> None:
    """Also on the decision route, which the app serves ahead of its middleware stack."""
    body = b"[" + b" " * (3 * 1024 * 1024) + b"]"
    before = api.counts()
    response = api.call(
        "POST",
        path,
        content=body if declared else iter([body[:1024], body[1024:]]),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "BODY_TOO_LARGE"
    assert api.counts() == before


def test_a_decision_that_fails_unexpectedly_is_a_server_error_and_the_next_is_served(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    decide = api.engine.decide
    monkeypatch.setattr(api.engine, "decide", lambda request: 1 / 0)
    client = TestClient(api.client.app, raise_server_exceptions=False)
    key = {"Authorization": f"Bearer {api.keys['channel']}"}
    body = {"customer_id": "c-1", "channel": "sms", "context": {}}
    assert client.post("/v1/decisions", json=body, headers=key).status_code == 500
    monkeypatch.setattr(api.engine, "decide", decide)
    assert client.post("/v1/decisions", json=body, headers=key).status_code == 200


def test_the_service_answers_under_a_root_path(api: Api) -> None:
    client = TestClient(api.client.app, root_path="/nbo")
    key = {"Authorization": f"Bearer {api.keys['channel']}"}
    body = {"customer_id": "c-1", "channel": "sms", "context": CONTEXT}
    decision = client.post("/nbo/v1/decisions", json=body, headers=key)
    assert decision.status_code == 200, decision.text
    assert client.get(f"/nbo/v1/decisions/{decision.json()['decision_id']}").status_code == 401
    assert client.post("/nbo/v1/decisions", json={}, headers=key).status_code == 422


class RecordingTelemetry:
    """Stands in for FastAPI's native telemetry: reports ``on`` and records what it traced."""

    def __init__(self, on: bool) -> None:
        self.on = on
        self.traced: list[str] = []

    def enabled(self) -> bool:
        return self.on

    async def __call__(self, *, app: Any, scope: Any, receive: Any, send: Any, **_: Any) -> None:
        self.traced.append(scope["path"])
        await app(scope, receive, send)


@pytest.mark.parametrize("on", [False, True], ids=["telemetry off", "telemetry on"])
def test_the_decision_route_is_traced_when_fastapi_telemetry_is_on(
    api: Api, monkeypatch: pytest.MonkeyPatch, on: bool
) -> None:
    """Served ahead of FastAPI while its telemetry is off; through it, traced, once it is on."""
    app = api.client.app
    telemetry = RecordingTelemetry(on)
    monkeypatch.setattr(app, "_native_telemetry", telemetry)
    monkeypatch.setattr(app, "TELEMETRY_CHECK_SECONDS", 0.0)
    body = {"customer_id": "c-1", "channel": "sms", "context": CONTEXT}
    decision = api.call("POST", "/v1/decisions", json=body)
    assert decision.status_code == 200, decision.text
    assert api.call("GET", "/healthz", role=None).status_code == 200
    assert telemetry.traced == (["/v1/decisions", "/healthz"] if on else [])


def test_health_and_openapi(api: Api) -> None:
    assert api.call("GET", "/healthz", role=None).json() == {"status": "ok"}
    paths = api.call("GET", "/openapi.json", role=None).json()["paths"]
    assert {
        "/v1/decisions",
        "/v1/events",
        "/v1/offers/{offer_id}",
        "/v1/budgets/{budget_id}",
    } <= set(paths)
    decide = paths["/v1/decisions"]["post"]
    body = decide["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["customer_id", "channel"]
    assert {"customer_id", "channel", "placement", "context", "limit", "explain"} == set(
        body["properties"]
    )
    assert decide["security"] == [{"HTTPBearer": []}]
    # Maintainers' notes stay out of the API's documentation.
    assert (
        decide["description"]
        == "Choose up to ``limit`` offers; an empty ``offers`` list is a valid answer."
    )
    assert decide["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DecisionOut"
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.fixed_dictionaries(
        {},
        optional={
            "customer_id": json_values | st.text(max_size=70),
            "channel": st.sampled_from(["sms", "app_banner", "fax"]) | json_values,
            "context": json_values,
            "limit": json_values,
            "placement": json_values,
        },
    )
)
def test_no_decision_body_gives_a_server_error(api: Api, body: dict[str, Any]) -> None:
    response = api.call(
        "POST",
        "/v1/decisions",
        content=json.dumps(body, allow_nan=True),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code in (200, 400, 422), response.text


def test_the_service_freezes_what_it_loaded_at_start_up(sqlite_url: str) -> None:
    """A full collection must not scan the loaded service under load (the p99's 90 ms pauses)."""
    engine = open_engine(sqlite_url)
    gc.unfreeze()
    try:
        with TestClient(create_app(engine.settings, engine)) as client:  # runs the lifespan
            assert gc.get_freeze_count() > 10_000
            assert client.get("/healthz").json() == {"status": "ok"}
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
        engine.db.dispose()
