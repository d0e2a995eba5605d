"""Redaction of credentials in text bound for a log, an audit event, an error message or a metric label.

One function, `redact`, applied at the sinks (the audit sink, the log formatter,
OAuth error descriptions, CLI error lines, metric label values) rather than at
each call site, so a value that reaches a sink by an unforeseen path (a secret
pasted into `client_id`, a token in an exception message) is still hidden:

- a Warden secret: ``wsec_`` + 42 base62 characters (and the registration credentials of
  the same shape, ``wiat_`` and ``wrat_``). Shape alone is enough:
  a secret with a mistyped character fails the checksum but still leaks 41 of
  its 42 characters, so the checksum is not required here;
- a whole JWT (JWS compact form, three base64url segments, header starting with
  ``eyJ``, i.e. ``{"``): the signature is kept out, and so are the claims;
- a PEM private key block (``-----BEGIN ... PRIVATE KEY-----`` to its END line,
  or to the end of the text if it was cut).

Text without any of the three markers is returned as is after three substring
checks, so the cost on the hot paths (an audit line per token) stays small.
"""

from __future__ import annotations

import logging
import re

from warden.core.secrets import CREDENTIAL_PREFIXES, SECRET_LENGTH, SECRET_PREFIX

__all__ = ["REDACTED", "RedactingFormatter", "configure_logging", "redact", "redact_optional"]

REDACTED = "[redacted]"

_SECRET = re.compile("(" + "|".join(map(re.escape, CREDENTIAL_PREFIXES)) + ")"
                     + f"[0-9A-Za-z]{{{SECRET_LENGTH - len(SECRET_PREFIX)}}}")
# Header "eyJ..." (base64url of '{"'), payload, signature (may be empty for alg=none).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL)


def redact(text: str) -> str:
    """Return `text` with every Warden secret, whole JWT and PEM private key replaced by a marker."""
    if "_" in text and any(prefix in text for prefix in CREDENTIAL_PREFIXES):
        text = _SECRET.sub(lambda m: m.group(1) + REDACTED, text)
    if "eyJ" in text:
        text = _JWT.sub("[redacted jwt]", text)
    if "PRIVATE KEY-----" in text:
        text = _PEM.sub("[redacted private key]", text)
    return text


def redact_optional(text: str | None) -> str | None:
    return None if text is None else redact(text)


class RedactingFormatter(logging.Formatter):
    """A `logging.Formatter` whose whole output (message, arguments, traceback) goes through `redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str | int, fmt: str) -> None:
    """`logging.basicConfig` with a stderr handler whose formatter redacts (a no-op if the root logger has handlers)."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
