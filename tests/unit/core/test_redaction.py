"""The one redactor used by every sink (audit, logs, error descriptions, CLI errors, metric labels; T54, T65)."""

import logging
import random as _random
import sys

from hypothesis import given
from hypothesis import strategies as st

from warden.core.redaction import REDACTED, RedactingFormatter, redact
from warden.core.secrets import SECRET_PREFIX, generate_secret
from warden.protocol.errors import InvalidClient, safe_description

_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
_seeds = st.integers(min_value=0, max_value=2**64)


def _secret(seed: int) -> str:
    rng = _random.Random(seed)
    return generate_secret(lambda n: bytes(rng.getrandbits(8) for _ in range(n)))


@given(_seeds, _printable, _printable)
def test_any_value_holding_a_valid_warden_secret_is_redacted(seed, before, after):
    secret = _secret(seed)
    out = redact(before + secret + after)
    assert secret not in out
    assert secret[len(SECRET_PREFIX):] not in out  # not even the part after the prefix


@given(_seeds, st.integers(min_value=len(SECRET_PREFIX), max_value=46))
def test_a_secret_with_a_mistyped_character_is_redacted_too(seed, i):
    secret = _secret(seed)
    typo = secret[:i] + ("A" if secret[i] != "A" else "B") + secret[i + 1:]
    assert typo[len(SECRET_PREFIX):] not in redact(f"client_id={typo}")


@given(st.from_regex(r"[A-Za-z0-9_.:@/-]{1,60}", fullmatch=True))
def test_ordinary_client_ids_are_untouched(client_id):
    if SECRET_PREFIX in client_id or "eyJ" in client_id:
        return  # not ordinary
    assert redact(client_id) == client_id


def test_generated_ids_hostnames_and_short_prefixed_values_are_untouched():
    for value in ("c_3f9a0b1c2d3e4f50", "billing-service", "api.example.com", "https://api.example/v1",
                  "wsec_short", "wsec_" + "a" * 41, "spiffe://example.org/ns/default/sa/api", "a.b.c",
                  "127.0.0.1:5555"):
        assert redact(value) == value


def test_whole_jwts_are_redacted():
    jwt = ("eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJjXzEyMyJ9."
           "MEUCIQDabc_def-123")
    assert redact(f"token {jwt} refused") == "token [redacted jwt] refused"
    unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."
    assert "eyJzdWIiOiJ4In0" not in redact(unsigned)


def test_pem_private_keys_are_redacted_whole_or_cut():
    key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----"
    assert redact(f"bad key: {key} end") == "bad key: [redacted private key] end"
    ec = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBase64Material"
    assert "Base64Material" not in redact("x " + ec)
    public = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"
    assert redact(public) == public


@given(st.text(max_size=200))
def test_redact_never_raises_and_is_idempotent(text):
    once = redact(text)
    assert redact(once) == once


def test_error_descriptions_are_redacted():
    secret = _secret(1)
    assert secret not in safe_description(f"unknown client {secret}")
    assert secret not in str(InvalidClient(f"unknown client {secret}"))


def test_the_log_formatter_redacts_message_arguments_and_tracebacks():
    secret = _secret(2)
    formatter = RedactingFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError(f"bad {secret}")
    except ValueError:
        record = logging.LogRecord("warden.server", logging.ERROR, __file__, 1, "client %s", (secret,),
                                   sys.exc_info())
    out = formatter.format(record)
    assert secret not in out
    assert "client wsec_[redacted]" in out
    assert "ValueError: bad wsec_[redacted]" in out


def test_metric_label_values_are_redacted():
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    from warden.server.metrics import Labelled

    registry = CollectorRegistry()
    counter = Counter("t_total", "t", ["reason"], registry=registry)
    secret = _secret(3)
    Labelled(counter)(f"bad {secret}").inc()
    assert secret not in generate_latest(registry).decode()


def test_registration_credentials_are_redacted():
    import secrets as random

    from warden.core.secrets import (
        INITIAL_ACCESS_TOKEN_PREFIX,
        REGISTRATION_ACCESS_TOKEN_PREFIX,
        generate_secret,
    )

    for prefix in (INITIAL_ACCESS_TOKEN_PREFIX, REGISTRATION_ACCESS_TOKEN_PREFIX):
        value = generate_secret(random.token_bytes, prefix)
        out = redact(f"Bearer {value} refused")
        assert value not in out and out == f"Bearer {prefix}{REDACTED} refused"
