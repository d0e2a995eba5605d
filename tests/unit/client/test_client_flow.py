"""The sans-I/O token flow, stepped by hand with canned answers and an injected clock and random."""

from __future__ import annotations

import base64
import json
import random
from urllib.parse import parse_qs

import pytest

from warden.client import RefreshPolicy, RetryPolicy, TokenError
from warden.client._discovery import EndpointResolver
from warden.client._dpop import DPoPKey
from warden.client._flow import Decision
from warden.client._messages import HTTPRequest, HTTPResponse, TransportFailure
from warden.jose import parse_compact


def form_of(request: HTTPRequest) -> dict[str, list[str]]:
    return parse_qs(request.body.decode())


def header(request: HTTPRequest, name: str) -> str | None:
    return dict(request.headers).get(name)


def test_cold_cache_sends_one_client_credentials_request(make_flow, drive, clock, token_response):
    flow = make_flow()
    assert flow.decide(clock.now()) is Decision.FETCH
    run = drive(flow.exchange(refresh_ahead=False), [token_response("at-1")], clock)
    assert run.error is None and run.result is not None
    assert run.result.access_token == "at-1" and run.result.token_type == "Bearer"
    (send,) = run.sends
    request = send.request
    assert (request.method, request.url) == ("POST", "https://as.example/oauth2/token")
    form = form_of(request)
    assert form == {
        "grant_type": ["client_credentials"],
        "scope": ["read"],
        "resource": ["https://api.example"],
    }
    basic = base64.b64decode(header(request, "authorization").split(" ")[1]).decode()
    assert basic == "client-1:s3cr3t"
    assert header(request, "content-type") == "application/x-www-form-urlencoded"
    assert flow.decide(clock.now()) is Decision.USE


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.999999])
def test_refresh_point_is_drawn_from_the_window(make_flow, drive, clock, token_response, draws, draw):
    flow = make_flow(random=draws(draw))
    start = clock.now()
    token = drive(flow.exchange(refresh_ahead=False), [token_response(expires_in=1000)], clock).result
    assert token is not None
    assert token.refresh_at == pytest.approx(start + 1000 * (0.75 + 0.15 * draw))
    assert 750 <= token.refresh_at - start <= 900
    clock.advance(token.refresh_at - clock.now() - 0.001)
    assert flow.decide(clock.now()) is Decision.USE
    clock.advance(0.002)
    assert flow.decide(clock.now()) is Decision.REFRESH


def test_refresh_points_of_a_fleet_are_spread_over_the_window(make_flow, drive, clock, token_response):
    rng = random.Random(7)
    points = []
    for _ in range(200):
        flow = make_flow(random=rng.random)
        token = drive(flow.exchange(refresh_ahead=False), [token_response(expires_in=600)], clock).result
        assert token is not None
        points.append(token.refresh_at - token.issued_at)
    assert all(450 <= p <= 540 for p in points)
    assert max(points) - min(points) > 80  # the fleet does not renew together
    assert len({round(p, 6) for p in points}) == 200


def test_custom_refresh_window_is_respected(make_flow, drive, clock, token_response, draws):
    flow = make_flow(random=draws(0.0), refresh=RefreshPolicy(refresh_window=(0.5, 0.6)))
    token = drive(flow.exchange(refresh_ahead=False), [token_response(expires_in=100)], clock).result
    assert token is not None and token.refresh_at - token.issued_at == pytest.approx(50)


def test_lifetime_counts_from_local_send_time_not_from_the_jwt_exp(make_flow, drive, clock, token_response):
    # A JWT whose exp says "expired ten minutes ago" by a skewed clock must not matter (F12).
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 1}).encode()).rstrip(b"=").decode()
    jwt_like = f"eyJhbGciOiJFUzI1NiJ9.{claims}.c2ln"
    flow = make_flow()
    sent_at = clock.now()
    token = drive(
        flow.exchange(refresh_ahead=False), [token_response(jwt_like, expires_in=300)], clock, latency=2.0
    ).result
    assert token is not None
    assert token.issued_at == sent_at and token.expires_at == sent_at + 300
    assert flow.decide(clock.now()) is Decision.USE


def test_token_stops_being_handed_out_within_the_expiry_leeway(make_flow, drive, clock, token_response):
    flow = make_flow()
    token = drive(flow.exchange(refresh_ahead=False), [token_response(expires_in=300)], clock).result
    assert token is not None and token.usable_until == token.issued_at + 295
    clock.advance(294.9)
    assert flow.usable(clock.now()) is token
    clock.advance(0.2)
    assert flow.usable(clock.now()) is None
    assert flow.decide(clock.now()) is Decision.FETCH


def test_leeway_of_a_short_lived_token_is_capped_at_a_tenth(make_flow, drive, clock, token_response):
    flow = make_flow()
    token = drive(flow.exchange(refresh_ahead=False), [token_response(expires_in=10)], clock).result
    assert token is not None and token.usable_until - token.issued_at == pytest.approx(9)
    assert token.refresh_at <= token.usable_until


def test_missing_expires_in_gets_the_safe_default(make_flow, drive, clock, token_response):
    flow = make_flow(refresh=RefreshPolicy(default_expires_in=60))
    token = drive(flow.exchange(refresh_ahead=False), [token_response(expires_in=None)], clock).result
    assert token is not None and token.expires_at - token.issued_at == 60


def test_numeric_string_expires_in_is_tolerated(make_flow, drive, clock, token_response):
    token = drive(make_flow().exchange(refresh_ahead=False), [token_response(expires_in="120")], clock).result
    assert token is not None and token.expires_at - token.issued_at == 120


def _cached(make_flow, drive, clock, token_response, **kwargs):
    flow = make_flow(**kwargs)
    token = drive(flow.exchange(refresh_ahead=False), [token_response("at-1", expires_in=300)], clock).result
    assert token is not None
    return flow, token


def test_failed_refresh_keeps_serving_the_valid_token(
    make_flow, drive, clock, token_response, error_response
):
    flow, token = _cached(make_flow, drive, clock, token_response)
    clock.advance(token.refresh_at - clock.now())
    assert flow.decide(clock.now()) is Decision.REFRESH
    run = drive(flow.exchange(refresh_ahead=True), [error_response(503, body=b"<html>down</html>")], clock)
    assert run.error is None and run.result is token  # stale while failing
    assert len(run.sends) == 1 and run.sleeps == []  # one attempt, nobody kept waiting
    assert flow.decide(clock.now()) is Decision.USE  # backing off
    clock.advance(flow.not_before - clock.now())
    assert flow.decide(clock.now()) is Decision.REFRESH


def test_failed_refresh_with_protocol_error_still_serves_until_expiry(
    make_flow, drive, clock, token_response, error_response
):
    flow, token = _cached(make_flow, drive, clock, token_response)
    clock.advance(token.refresh_at - clock.now())
    run = drive(flow.exchange(refresh_ahead=True), [error_response(401, "invalid_client")], clock)
    assert run.result is token
    clock.advance(token.usable_until - clock.now())
    assert flow.decide(clock.now()) is Decision.FETCH


def test_successful_refresh_replaces_the_token(make_flow, drive, clock, token_response):
    flow, token = _cached(make_flow, drive, clock, token_response)
    clock.advance(token.refresh_at - clock.now())
    run = drive(flow.exchange(refresh_ahead=True), [token_response("at-2")], clock)
    assert run.result is not None and run.result.access_token == "at-2"
    assert flow.counters.renewals == 1 and flow.counters.tokens == 2


def test_expired_token_with_failing_server_raises(
    make_flow, drive, clock, token_response, error_response, draws
):
    flow, _ = _cached(
        make_flow,
        drive,
        clock,
        token_response,
        retry=RetryPolicy(base_delay=0.1, max_delay=1, max_attempts=3, deadline=60),
    )
    clock.advance(300)
    assert flow.usable(clock.now()) is None
    run = drive(flow.exchange(refresh_ahead=False), [error_response(503)] * 3, clock)
    assert isinstance(run.error, TokenError)
    assert run.error.error == "server_error" and run.error.retryable and run.error.status == 503
    assert len(run.sends) == 3 and len(run.sleeps) == 2
    assert flow.usable(clock.now()) is None  # the expired token is never handed out (F16)


def test_backoff_is_exponential_capped_and_fully_jittered(make_flow, drive, clock, error_response, draws):
    retry = RetryPolicy(base_delay=1, max_delay=4, max_attempts=6, deadline=1000)
    flow = make_flow(retry=retry, random=draws(0.999999))
    run = drive(flow.exchange(refresh_ahead=False), [error_response(500)] * 6, clock)
    assert isinstance(run.error, TokenError)
    assert run.sleeps == pytest.approx([1, 2, 4, 4, 4], rel=1e-5)  # capped at max_delay

    flow = make_flow(retry=retry, random=draws(0.5, 0.25, 0.0, 0.75, 0.1))
    run = drive(flow.exchange(refresh_ahead=False), [error_response(502)] * 6, clock)
    assert run.sleeps == pytest.approx([0.5 * 1, 0.25 * 2, 0.0 * 4, 0.75 * 4, 0.1 * 4])


def test_backoff_bounds_hold_for_any_draw():
    retry = RetryPolicy(base_delay=0.5, max_delay=30)
    rng = random.Random(1)
    for failures in range(1, 80):
        delay = retry.backoff(failures, rng.random())
        assert 0 <= delay <= min(30, 0.5 * 2 ** (failures - 1))


def test_retry_after_is_honoured(make_flow, drive, clock, token_response, error_response, draws):
    flow = make_flow(random=draws(0.5), retry=RetryPolicy(base_delay=1, max_delay=8))
    run = drive(
        flow.exchange(refresh_ahead=False),
        [error_response(429, headers={"retry-after": "7"}), token_response("at-1")],
        clock,
    )
    assert run.result is not None
    assert run.sleeps == [pytest.approx(7 + 0.5 * 1)]  # never earlier than asked, plus jitter (F14)


def test_retry_after_date_is_measured_against_the_date_header(
    make_flow, drive, clock, token_response, error_response, draws
):
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT", "date": "Wed, 21 Oct 2015 07:28:00 GMT"}
    flow = make_flow(random=draws(0.0))
    run = drive(
        flow.exchange(refresh_ahead=False),
        [error_response(503, "temporarily_unavailable", headers=headers), token_response()],
        clock,
    )
    assert run.sleeps == [pytest.approx(10)]


def test_retry_after_longer_than_the_deadline_raises_at_once(make_flow, drive, clock, error_response, draws):
    flow = make_flow(random=draws(0.0), retry=RetryPolicy(deadline=30, max_retry_after=300))
    run = drive(
        flow.exchange(refresh_ahead=False), [error_response(429, headers={"retry-after": "100000"})], clock
    )
    assert isinstance(run.error, TokenError) and run.error.retryable
    assert run.error.retry_after == pytest.approx(300)  # capped
    assert run.sleeps == []


def test_waits_out_a_pause_the_server_asked_for_before_the_next_fetch(
    make_flow, drive, clock, token_response, error_response, draws
):
    flow = make_flow(random=draws(0.0))
    token = drive(flow.exchange(refresh_ahead=False), [token_response("at-1", expires_in=30)], clock).result
    assert token is not None
    clock.advance(token.refresh_at - clock.now())
    drive(flow.exchange(refresh_ahead=True), [error_response(429, headers={"retry-after": "20"})], clock)
    assert flow.not_before > token.usable_until
    pause_ends = flow.not_before
    clock.advance(token.usable_until - clock.now())  # expired while the pause still runs
    run = drive(flow.exchange(refresh_ahead=False), [token_response("at-2")], clock)
    assert run.sleeps == [pytest.approx(pause_ends - token.usable_until)]
    assert run.result is not None and run.result.access_token == "at-2"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "invalid_scope"),
        (401, "invalid_client"),
        (400, "invalid_target"),
        (400, "unauthorized_client"),
        (400, "invalid_grant"),
        (400, "invalid_request"),
    ],
)
def test_protocol_errors_are_not_retried(make_flow, drive, clock, error_response, status, code):
    flow = make_flow()
    run = drive(flow.exchange(refresh_ahead=False), [error_response(status, code, "Not for you")], clock)
    assert isinstance(run.error, TokenError)
    assert (run.error.error, run.error.error_description, run.error.status) == (code, "Not for you", status)
    assert run.error.retryable is False
    assert len(run.sends) == 1 and run.sleeps == []


def test_protocol_error_is_answered_from_memory_during_backoff(
    make_flow, drive, clock, error_response, token_response, draws
):
    flow = make_flow(random=draws(0.5), retry=RetryPolicy(base_delay=2))
    drive(flow.exchange(refresh_ahead=False), [error_response(401, "invalid_client")], clock)
    again = drive(flow.exchange(refresh_ahead=False), [], clock)
    assert isinstance(again.error, TokenError) and again.error.error == "invalid_client"
    assert again.sends == []  # a caller retrying in a loop does not hammer the server (F14)
    clock.advance(flow.not_before - clock.now())
    later = drive(flow.exchange(refresh_ahead=False), [token_response("at-1")], clock)
    assert later.result is not None


def test_network_failure_is_retried(make_flow, drive, clock, token_response):
    flow = make_flow()
    run = drive(
        flow.exchange(refresh_ahead=False), [TransportFailure("ConnectError"), token_response()], clock
    )
    assert run.result is not None and len(run.sends) == 2 and len(run.sleeps) == 1


def test_deadline_bounds_the_total_wait(make_flow, drive, clock, error_response, draws):
    flow = make_flow(
        random=draws(0.999), retry=RetryPolicy(base_delay=1, max_delay=10, max_attempts=50, deadline=5)
    )
    start = clock.now()
    run = drive(flow.exchange(refresh_ahead=False), [error_response(503)] * 50, clock)
    assert isinstance(run.error, TokenError)
    assert clock.now() - start <= 5
    assert len(run.sends) == 3  # waits of ~1 and ~2 fit in 5 s; the next (~4) would not


@pytest.mark.parametrize(
    ("answer", "code", "retryable"),
    [
        (HTTPResponse(200, {}, b"{not json"), "invalid_response", False),
        (HTTPResponse(200, {}, b"[1, 2]"), "invalid_response", False),
        (
            HTTPResponse(200, {}, b'{"access_token": "x", "token_type": "Bearer", "expires_in": NaN}'),
            "invalid_response",
            False,
        ),
        (
            HTTPResponse(500, {"content-type": "text/html"}, b"<html><body>Internal error</body></html>"),
            "server_error",
            True,
        ),
        (HTTPResponse(502, {}, b""), "server_error", True),
        (HTTPResponse(429, {}, b"slow down"), "slow_down", True),
        (HTTPResponse(400, {"content-type": "text/plain"}, b"bad"), "invalid_response", False),
        (HTTPResponse(302, {"location": "https://elsewhere.example/"}, b""), "invalid_response", False),
        (HTTPResponse(200, {}, b'{"access_token": "x", "expires_in": 60}'), "invalid_response", False),
        (HTTPResponse(200, {}, b'{"access_token": "x", "token_type": "mac"}'), "invalid_token_type", False),
        (HTTPResponse(200, {}, b'{"access_token": "x", "token_type": "DPoP"}'), "invalid_token_type", False),
        (
            HTTPResponse(200, {}, b'{"access_token": "x\\r\\nX-Evil: 1", "token_type": "Bearer"}'),
            "invalid_response",
            False,
        ),
        (
            HTTPResponse(200, {}, b'{"access_token": "x", "token_type": "Bearer", "expires_in": -5}'),
            "invalid_response",
            False,
        ),
        (
            HTTPResponse(200, {}, b'{"access_token": "x", "token_type": "Bearer", "expires_in": true}'),
            "invalid_response",
            False,
        ),
    ],
)
def test_bad_answers_become_typed_errors(make_flow, drive, clock, answer, code, retryable):
    retry = RetryPolicy(max_attempts=1)
    run = drive(make_flow(retry=retry).exchange(refresh_ahead=False), [answer], clock)
    assert isinstance(run.error, TokenError)
    assert (run.error.error, run.error.retryable, run.error.status) == (code, retryable, answer.status)
    assert b"Internal" not in str(run.error).encode()  # no body text is copied into the error


def test_error_description_is_reduced_to_the_safe_character_set(make_flow, drive, clock, error_response):
    run = drive(
        make_flow().exchange(refresh_ahead=False),
        [error_response(400, "invalid_scope", 'bad "scope"\n\x00 here')],
        clock,
    )
    assert isinstance(run.error, TokenError)
    assert run.error.error_description == "bad ?scope??? here"


def test_dpop_client_refuses_a_bearer_token(make_flow, drive, clock, token_response):
    flow = make_flow(dpop_key=DPoPKey.generate())
    run = drive(flow.exchange(refresh_ahead=False), [token_response(token_type="Bearer")], clock)
    assert isinstance(run.error, TokenError) and run.error.error == "invalid_token_type"
    assert flow.token is None  # the downgraded token is discarded (T63)


def test_dpop_client_sends_a_proof_and_accepts_a_dpop_token(make_flow, drive, clock, token_response):
    flow = make_flow(dpop_key=DPoPKey.generate())
    run = drive(flow.exchange(refresh_ahead=False), [token_response(token_type="dpop")], clock)
    assert run.result is not None and run.result.token_type == "DPoP"
    proof = parse_compact(header(run.sends[0].request, "dpop"))
    assert proof.header["typ"] == "dpop+jwt"
    assert proof.claims()["htm"] == "POST" and proof.claims()["htu"] == "https://as.example/oauth2/token"


def test_use_dpop_nonce_is_retried_once_with_the_nonce(
    make_flow, drive, clock, token_response, error_response
):
    flow = make_flow(dpop_key=DPoPKey.generate())
    nonce_error = error_response(400, "use_dpop_nonce", headers={"dpop-nonce": "n-1"})
    run = drive(flow.exchange(refresh_ahead=False), [nonce_error, token_response(token_type="DPoP")], clock)
    assert run.result is not None and run.sleeps == []
    first, second = (parse_compact(header(s.request, "dpop")).claims() for s in run.sends)
    assert "nonce" not in first and second["nonce"] == "n-1"

    again = make_flow(dpop_key=DPoPKey.generate())
    run = drive(again.exchange(refresh_ahead=False), [nonce_error, nonce_error], clock)
    assert isinstance(run.error, TokenError) and run.error.error == "use_dpop_nonce"
    assert len(run.sends) == 2  # the same nonce twice is not retried again


def test_invalidate_drops_only_the_named_token(make_flow, drive, clock, token_response):
    flow, token = _cached(make_flow, drive, clock, token_response)
    assert flow.invalidate("some-other-token") is False and flow.token is token
    assert flow.invalidate("at-1") is True and flow.token is None
    assert flow.decide(clock.now()) is Decision.FETCH


def test_discovery_runs_once_before_the_first_token_request(make_flow, drive, clock, token_response):
    endpoint = EndpointResolver(issuer="https://as.example", token_endpoint=None)
    flow = make_flow(endpoint=endpoint)
    metadata = HTTPResponse(
        200,
        {},
        json.dumps({"issuer": "https://as.example", "token_endpoint": "https://as.example/token"}).encode(),
    )
    run = drive(flow.exchange(refresh_ahead=False), [metadata, token_response()], clock)
    assert [(s.request.method, s.request.url) for s in run.sends] == [
        ("GET", "https://as.example/.well-known/oauth-authorization-server"),
        ("POST", "https://as.example/token"),
    ]
    other = make_flow(endpoint=endpoint, key=("https://other.example", frozenset()))
    run = drive(other.exchange(refresh_ahead=False), [token_response()], clock)
    assert [s.request.method for s in run.sends] == ["POST"]
    assert "scope" not in form_of(run.sends[0].request)


def test_issuer_mismatch_aborts_without_retry(make_flow, drive, clock):
    endpoint = EndpointResolver(issuer="https://as.example", token_endpoint=None)
    tampered = HTTPResponse(
        200,
        {},
        json.dumps(
            {"issuer": "https://evil.example", "token_endpoint": "https://evil.example/token"}
        ).encode(),
    )
    run = drive(make_flow(endpoint=endpoint).exchange(refresh_ahead=False), [tampered], clock)
    assert isinstance(run.error, TokenError) and run.error.error == "issuer_mismatch"
    assert run.error.retryable is False and len(run.sends) == 1
    assert endpoint.token_endpoint is None
