"""Malformed, oversized, duplicated and unexpected input: a standard error, never a 500 or a stack
trace, no secret echoed, and stored data unchanged. Logs and audit events of the whole run are
checked for secrets and tokens."""

from __future__ import annotations

import base64
import logging

from tests.integration.conftest import LiveServer

FORM = {"content-type": "application/x-www-form-urlencoded"}


def snapshot(server: LiveServer) -> tuple:
    store = server.admin.store
    return (store.load_apis(), store.load_clients(), store.load_grants(),
            [(s.secret_id, s.expires_at, s.revoked_at) for s in store.load_secrets()],
            [(k.kid, k.state) for k in store.load_keys()], store.latest_change())


def cases(cid: str, secret: str) -> list[tuple[str, str, dict, bytes | None, int, str | None]]:
    good_basic = "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()
    gc = b"grant_type=client_credentials"
    return [
        # (method, path, headers, body, status, error)
        ("GET", "/oauth2/token", {}, None, 400, "invalid_request"),
        ("PUT", "/oauth2/token", {**FORM, "authorization": good_basic}, gc, 400, "invalid_request"),
        ("POST", "/oauth2/token", {"content-type": "application/json", "authorization": good_basic},
         b'{"grant_type":"client_credentials"}', 400, "invalid_request"),
        ("POST", "/oauth2/token", {"authorization": good_basic}, gc, 400, "invalid_request"),
        ("POST", "/oauth2/token", {**FORM, "authorization": good_basic}, gc + b"&" + gc, 400, "invalid_request"),
        ("POST", "/oauth2/token", {**FORM, "authorization": good_basic}, gc + b"&scope=a&scope=b", 400,
         "invalid_request"),
        ("POST", "/oauth2/token", {**FORM, "authorization": good_basic}, b"", 400, "invalid_request"),
        ("POST", "/oauth2/token", {**FORM, "authorization": good_basic}, gc + b"&x=\xff", 400, "invalid_request"),
        ("POST", "/oauth2/token", {**FORM, "authorization": good_basic}, gc + b"&scope=%ff", 400,
         "invalid_request"),
        ("POST", "/oauth2/token", {**FORM, "authorization": good_basic}, gc + b"&scope=" + b"a" * 9000, 400,
         "invalid_request"),
        ("POST", "/oauth2/token", {**FORM, "authorization": good_basic}, gc + b"&x=" + b"a" * 20000, 413,
         "invalid_request"),
        ("POST", "/oauth2/token", {**FORM, "authorization": good_basic}, b"&".join([b"p%d=1" % i for i in range(100)]),
         400, "invalid_request"),
        ("POST", "/oauth2/token", {**FORM, "authorization": good_basic},
         gc + f"&client_id={cid}&client_secret={secret}".encode(), 400, "invalid_request"),
        ("POST", "/oauth2/token?client_secret=x", {**FORM, "authorization": good_basic}, gc, 400,
         "invalid_request"),
        ("POST", "/oauth2/token", {**FORM, "authorization": "Basic !!!"}, gc, 401, "invalid_client"),
        ("POST", "/oauth2/token", {**FORM, "authorization": "Bearer abc"}, gc, 401, "invalid_client"),
        ("POST", "/oauth2/token", {**FORM, "authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()},
         gc, 401, "invalid_client"),
        ("POST", "/oauth2/token", FORM, gc, 401, "invalid_client"),
        ("POST", "/oauth2/token", FORM, gc + b"&client_id=" + cid.encode(), 401, "invalid_client"),
        ("POST", "/oauth2/token", FORM, gc + b"&client_assertion_type=x&client_assertion=y&client_id=" +
         cid.encode(), 401, "invalid_client"),
        ("POST", "/oauth2/token", {**FORM, "authorization": good_basic}, gc + b"&resource=%23frag", 400,
         "invalid_target"),
        ("POST", "/oauth2/token", {**FORM, "authorization": good_basic}, gc + b"&scope=a%20%20b", 400,
         "invalid_scope"),
        ("POST", "/oauth2/token", {**FORM, "authorization": good_basic}, b"grant_type=refresh_token", 400,
         "unsupported_grant_type"),
        ("POST", "/oauth2/introspect", {**FORM, "authorization": good_basic}, b"token=a&token=b", 400,
         "invalid_request"),
        ("POST", "/oauth2/introspect", {"content-type": "text/plain", "authorization": good_basic}, b"token=a", 400,
         "invalid_request"),
        ("GET", "/oauth2/introspect", {"authorization": good_basic}, None, 400, "invalid_request"),
        ("POST", "/oauth2/revoke", {**FORM, "authorization": good_basic}, b"", 400, "invalid_request"),
        ("POST", "/oauth2/jwks", {}, b"", 405, None),
        ("DELETE", "/.well-known/oauth-authorization-server", {}, None, 405, None),
        ("GET", "/nope", {}, None, 404, None),
    ]


def test_bad_input_gets_standard_errors_and_changes_nothing(server: LiveServer, caplog):
    caplog.set_level(logging.DEBUG)
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    before = snapshot(server)
    for method, path, headers, body, status, error in cases(cid, secret):
        resp = server.http.request(method, f"{server.url}{path}", headers=headers, content=body)
        assert resp.status_code == status, (method, path, body, resp.text)
        if error is not None:
            assert resp.json()["error"] == error, (method, path, body)
            assert resp.headers["cache-control"] == "no-store"
        assert secret not in resp.text and "Traceback" not in resp.text
    assert snapshot(server) == before
    assert "Traceback" not in caplog.text


def test_repeated_authorization_header_is_refused(sqlite_server: LiveServer):
    server = sqlite_server
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    basic = "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()
    resp = server.http.post(f"{server.url}/oauth2/token", content=b"grant_type=client_credentials",
                            headers=[("content-type", FORM["content-type"]), ("authorization", basic),
                                     ("authorization", basic)])
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


def test_no_secret_or_token_in_logs_or_audit(server: LiveServer, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    api = server.api("read")
    cid, secret = server.client({api: "read"})
    token = server.token(cid, secret).json()["access_token"]
    server.post("/oauth2/introspect", data={"token": token}, auth=(cid, secret))
    server.post("/oauth2/revoke", data={"token": token}, auth=(cid, secret))
    server.token(cid, secret + "x")
    server.token(cid, secret, scope="nope")
    rotated = server.admin.rotate_secret(cid, grace=0).secret
    server.sync()
    server.token(cid, secret)
    server.token(cid, rotated)
    server.admin.rotate_keys(["ES256"])
    events = server.audit_events()
    assert {"token.issued", "token.denied", "client.authentication_failed", "token.revoked",
            "client.created", "client.secret_rotated", "key.activated"} <= {e["event"] for e in events}
    captured = capsys.readouterr()
    haystack = caplog.text + server.audit_path.read_text() + captured.out + captured.err
    signature = token.rsplit(".", 1)[1]
    for needle in (secret, rotated, token, signature, secret[5:20]):
        assert needle not in haystack
    for key in server.admin.keys():
        assert key.encrypted_private_key.hex()[:32] not in haystack
    metrics = server.http.get(f"{server.url}/metrics").text
    assert secret not in metrics and token not in metrics
    # the client id appears only in the bounded top-N series (metrics.top_clients)
    assert all(line.startswith("warden_client_requests_total{") for line in metrics.splitlines() if cid in line)
