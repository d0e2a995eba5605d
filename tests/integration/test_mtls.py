"""Mutual TLS (RFC 8705): tls_client_auth and self_signed_tls_client_auth, certificate-bound tokens,
a certificate header believed only from configured proxies, and a real nginx terminating TLS in front
of Warden, with httpx presenting real client certificates."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import jwt as pyjwt
import pytest
from tests.integration.conftest import LiveServer, free_port, wait_until
from tests.pki import CA, Issued, self_signed

from warden.core.client_metadata import parse_client_metadata
from warden.jose import public_jwk
from warden.protocol.mtls import certificate_thumbprint
from warden.services.admin import GrantSpec

HEADER = "x-ssl-client-cert"
PKI = CA()
CLIENT = PKI.issue("billing", dns=["billing.svc.example"])
LOOKALIKE = CA("Impostor CA").issue("billing", dns=["billing.svc.example"])
DEVICE = self_signed("device-7")


@pytest.fixture
def mtls_server(start_server, tmp_path: Path) -> LiveServer:
    bundle = tmp_path / "clients-ca.pem"
    bundle.write_bytes(PKI.pem)
    return start_server("sqlite", **{"mtls.enabled": True, "mtls.client_ca_file": str(bundle),
                                     "mtls.proxy_header": HEADER, "mtls.trusted_proxies": ["127.0.0.1"]})


def register(server: LiveServer, method: str, bound: bool = False, **meta: object) -> tuple[str, str]:
    api = server.api("read")
    metadata = parse_client_metadata({**meta, "tls_client_certificate_bound_access_tokens": bound})
    client, secret = server.admin.create_client("mtls", [GrantSpec(api, ("read",))], auth_method=method,
                                                metadata=metadata)
    assert secret is None
    server.wait_for_client(client.client_id)
    return client.client_id, api


def via_proxy(server: LiveServer, cid: str, cert: Issued | None, path: str = "/oauth2/token", **data: str):
    headers = {HEADER: quote(cert.pem.decode())} if cert else {}
    body = {"client_id": cid, **data}
    if path == "/oauth2/token":
        body.setdefault("grant_type", "client_credentials")
    return server.post(path, data=body, headers=headers)


def test_tls_client_auth_by_subject_and_san(mtls_server: LiveServer):
    s = mtls_server
    by_dn, _ = register(s, "tls_client_auth", tls_client_auth_subject_dn="CN=billing,O=Warden Test")
    by_san, _ = register(s, "tls_client_auth", tls_client_auth_san_dns="billing.svc.example")
    for cid in (by_dn, by_san):
        resp = via_proxy(s, cid, CLIENT)
        assert resp.status_code == 200, resp.text
        assert resp.json()["token_type"] == "Bearer"
    wrong_subject, _ = register(s, "tls_client_auth", tls_client_auth_san_dns="reports.svc.example")
    for cid, cert in ((by_dn, LOOKALIKE), (by_san, LOOKALIKE), (wrong_subject, CLIENT), (by_dn, DEVICE),
                      (by_dn, None)):
        resp = via_proxy(s, cid, cert)
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_client", (cid, cert)
    reasons = {e.get("reason") for e in s.audit_events() if e["event"] == "client.authentication_failed"}
    assert {"certificate_chain", "certificate_subject", "no_client_auth"} <= reasons


def test_self_signed_tls_client_auth(mtls_server: LiveServer):
    s = mtls_server
    cid, _ = register(s, "self_signed_tls_client_auth", jwks={"keys": [public_jwk(DEVICE.key)]})
    assert via_proxy(s, cid, DEVICE).status_code == 200
    assert via_proxy(s, cid, self_signed("device-8")).status_code == 401
    assert via_proxy(s, cid, CLIENT).status_code == 401


def test_certificate_bound_tokens(mtls_server: LiveServer):
    s = mtls_server
    cid, api = register(s, "tls_client_auth", bound=True, tls_client_auth_san_dns="billing.svc.example")
    token = via_proxy(s, cid, CLIENT).json()["access_token"]
    cnf = pyjwt.decode(token, options={"verify_signature": False})["cnf"]
    assert cnf == {"x5t#S256": certificate_thumbprint(CLIENT.cert)}
    from warden.resource import InvalidToken, Validator

    validator = Validator(issuer=s.issuer, audience=api)
    assert validator.validate(token, client_certificate=CLIENT.pem).client_id == cid
    with pytest.raises(InvalidToken):  # the same token with another certificate (T52)
        validator.validate(token, client_certificate=LOOKALIKE.pem)
    with pytest.raises(InvalidToken):
        validator.validate(token)
    # an API can require bound tokens for every client; a secret client presenting a certificate gets one
    bound_api = s.api("read")
    s.admin.save_api(bound_api, ["read"], cert_bound=True)
    secret_cid, secret = s.client({bound_api: "read"})
    plain = s.token(secret_cid, secret)
    assert plain.status_code == 400 and plain.json()["error"] == "invalid_request"
    with_cert = s.http.post(f"{s.url}/oauth2/token", data={"grant_type": "client_credentials"},
                            auth=(secret_cid, secret), headers={HEADER: quote(CLIENT.pem.decode())})
    assert with_cert.status_code == 200
    assert "x5t#S256" in pyjwt.decode(with_cert.json()["access_token"], options={"verify_signature": False})["cnf"]


def test_certificate_header_from_an_untrusted_address_is_ignored(start_server, tmp_path: Path):
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(PKI.pem)
    s = start_server("sqlite", **{"mtls.enabled": True, "mtls.client_ca_file": str(bundle),
                                  "mtls.proxy_header": HEADER, "mtls.trusted_proxies": ["10.9.9.9"]})
    cid, _ = register(s, "tls_client_auth", tls_client_auth_san_dns="billing.svc.example")
    resp = via_proxy(s, cid, CLIENT)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    assert any(e["event"] == "client.certificate_header_ignored" for e in s.audit_events())


def test_envoy_xfcc_header_from_a_trusted_proxy(start_server, tmp_path: Path):
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(PKI.pem)
    s = start_server("sqlite", **{"mtls.enabled": True, "mtls.client_ca_file": str(bundle),
                                  "mtls.proxy_header": "x-forwarded-client-cert", "mtls.proxy_header_format": "xfcc",
                                  "mtls.trusted_proxies": ["127.0.0.1"]})
    cid, _ = register(s, "tls_client_auth", bound=True, tls_client_auth_san_dns="billing.svc.example")
    xfcc = f'By=spiffe://edge;Hash=x;Cert="{quote(CLIENT.pem.decode())}";DNS=billing.svc.example'
    resp = s.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": cid},
                  headers={"x-forwarded-client-cert": xfcc})
    assert resp.status_code == 200, resp.text
    cnf = pyjwt.decode(resp.json()["access_token"], options={"verify_signature": False})["cnf"]
    assert cnf == {"x5t#S256": certificate_thumbprint(CLIENT.cert)}
    # an element naming a look-alike certificate is refused
    bad = f'By=spiffe://edge;Cert="{quote(LOOKALIKE.pem.decode())}"'
    assert s.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": cid},
                  headers={"x-forwarded-client-cert": bad}).status_code == 401


def test_malformed_certificate_header(mtls_server: LiveServer):
    cid, _ = register(mtls_server, "tls_client_auth", tls_client_auth_san_dns="billing.svc.example")
    resp = mtls_server.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": cid},
                            headers={HEADER: "garbage"})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


def test_metadata_advertises_certificate_bound_tokens(mtls_server: LiveServer):
    meta = httpx.get(f"{mtls_server.url}/.well-known/oauth-authorization-server").json()
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(meta["token_endpoint_auth_methods_supported"])


# a real nginx in front -------------------------------------------------------------------------
def _nginx() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if path is None:  # .ci/run installs it; elsewhere the test says what it needs
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    return path


@pytest.fixture
def nginx_in_front(tmp_path: Path) -> Iterator[callable]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(upstream: str) -> tuple[str, Path]:
        binary = _nginx()
        server_cert = PKI.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True)
        crt, key = server_cert.write(tmp_path, "server")
        ca = tmp_path / "ca.pem"
        ca.write_bytes(PKI.pem)
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(f"""
daemon off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {tmp_path}/body;
  proxy_temp_path {tmp_path}/proxy;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    ssl_client_certificate {ca};
    ssl_verify_client optional_no_ca;   # Warden checks the chain (tls_client_auth) or the key (self-signed)
    location / {{
      proxy_pass {upstream};
      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;   # replaces anything the client sent
      proxy_set_header Host $host:$server_port;
    }}
  }}
}}
""")
        proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(tmp_path)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # errors go to nginx-error.log
        procs.append(proc)

        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        if not wait_until(listening, timeout=10):
            raise AssertionError(f"nginx did not start: {(tmp_path / 'nginx-error.log').read_text()}")
        return f"https://127.0.0.1:{port}", ca

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tls_client(ca: Path, cert: Issued | None, tmp_path: Path) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        crt, key = cert.write(tmp_path, f"client-{id(cert)}")
        context.load_cert_chain(str(crt), str(key))
    return httpx.Client(verify=context, timeout=10)


def test_real_nginx_terminating_tls_in_front_of_warden(mtls_server: LiveServer, nginx_in_front, tmp_path: Path):
    s = mtls_server
    base, ca = nginx_in_front(s.url)
    cid, _api = register(s, "tls_client_auth", bound=True, tls_client_auth_san_dns="billing.svc.example")
    device_cid, _ = register(s, "self_signed_tls_client_auth", jwks={"keys": [public_jwk(DEVICE.key)]})
    data = {"grant_type": "client_credentials", "client_id": cid}
    with _tls_client(ca, CLIENT, tmp_path) as client:
        resp = client.post(f"{base}/oauth2/token", data=data)
        assert resp.status_code == 200, resp.text
        token = resp.json()["access_token"]
        cnf = pyjwt.decode(token, options={"verify_signature": False})["cnf"]
        assert cnf["x5t#S256"] == certificate_thumbprint(CLIENT.cert)
        # a forged header from the client is replaced by nginx with the real certificate
        forged = client.post(f"{base}/oauth2/token", data=data, headers={HEADER: quote(LOOKALIKE.pem.decode())})
        assert forged.status_code == 200
    with _tls_client(ca, LOOKALIKE, tmp_path) as client:
        assert client.post(f"{base}/oauth2/token", data=data).status_code == 401
    with _tls_client(ca, None, tmp_path) as client:  # no certificate, forged header: ignored
        resp = client.post(f"{base}/oauth2/token", data=data, headers={HEADER: quote(CLIENT.pem.decode())})
        assert resp.status_code == 401
    with _tls_client(ca, DEVICE, tmp_path) as client:
        resp = client.post(f"{base}/oauth2/token", data={"grant_type": "client_credentials", "client_id": device_cid})
        assert resp.status_code == 200, resp.text


def test_wardens_own_tls_listener_hands_the_client_certificate_to_the_application(tmp_path: Path):
    """`warden serve --tls-cert --tls-key --tls-client-ca`: a real TLS listener, httpx with a real certificate."""
    import json
    import sys

    from tests.integration.test_cli_e2e import Served

    server_cert = PKI.issue("localhost", dns=["localhost"], ips=["127.0.0.1"], server=True)
    crt, key = server_cert.write(tmp_path, "server")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(PKI.pem)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(WARDEN_DATA_DIR=str(tmp_path / "data"), WARDEN_AUDIT_SINK="off", WARDEN_MTLS_ENABLED="true",
               WARDEN_MTLS_CLIENT_CA_FILE=str(ca), WARDEN_SERVER_TLS_CERT=str(crt), WARDEN_SERVER_TLS_KEY=str(key),
               WARDEN_SERVER_TLS_CLIENT_CA=str(ca), WARDEN_REGISTRY_POLL_INTERVAL="0.1")
    cli = [sys.executable, "-m", "warden.cli.main"]
    subprocess.run([*cli, "init"], env=env, check=True, capture_output=True, timeout=60)
    subprocess.run([*cli, "apis", "create", "https://api.example", "--scopes", "read"], env=env, check=True,
                   capture_output=True)
    created = json.loads(subprocess.run(
        [*cli, "clients", "create", "billing", "--grant", "https://api.example=read", "--auth-method",
         "tls_client_auth", "--tls-san-dns", "billing.svc.example", "--cert-bound", "--json"],
        env=env, check=True, capture_output=True, text=True).stdout)
    port = free_port()
    server = Served(env, port, base=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(cafile=str(ca)))
    try:
        data = {"grant_type": "client_credentials", "client_id": created["client_id"]}
        with _tls_client(ca, CLIENT, tmp_path) as client:
            meta = client.get(f"{server.url}/.well-known/oauth-authorization-server").json()
            assert meta["issuer"] == f"https://127.0.0.1:{port}"
            resp = client.post(f"{server.url}/oauth2/token", data=data)
            assert resp.status_code == 200, resp.text
            cnf = pyjwt.decode(resp.json()["access_token"], options={"verify_signature": False})["cnf"]
            assert cnf == {"x5t#S256": certificate_thumbprint(CLIENT.cert)}
        with _tls_client(ca, None, tmp_path) as client:  # no certificate: connects, but cannot authenticate
            assert client.post(f"{server.url}/oauth2/token", data=data).status_code == 401
    finally:
        assert server.stop()[0] == 0
