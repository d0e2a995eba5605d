"""warden.resource: a deliberate public surface, importable with the base install only."""

from __future__ import annotations

import subprocess
import sys

import warden.resource

EXPECTED = {
    "AccessTokenMiddleware", "Claims", "Credentials", "DPoPNonces", "DPoPVerifier", "ErrorResponse",
    "InsufficientScope", "InvalidDPoPProof", "InvalidRequest", "InvalidToken", "JWKSCache", "MemoryReplayCache",
    "ProtectedResourceMetadata", "metadata_url", "StatusListCache", "StatusPolicy",
    "ReplayCache", "Scheme", "TemporarilyUnavailable", "UseDPoPNonce", "ValidationCache", "Validator",
    "avalidate_request", "certificate_thumbprint", "error_response", "parse_credentials", "render_error",
    "validate_request",
}

BLOCK_ALL_BUT_BASE = """
import sys
class Block:
    # Everything a resource server must not need: the server extra, frameworks, test-only JOSE libraries.
    blocked = ("uvicorn", "sqlalchemy", "alembic", "psycopg", "prometheus_client", "starlette", "fastapi",
               "jwt", "authlib", "joserfc", "requests")
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ImportError(f"{name} must not be imported")
        return None
sys.meta_path.insert(0, Block())
import warden.resource, warden.resource.asgi, warden.resource.request, warden.resource.mtls
assert "fastapi" not in sys.modules and "starlette" not in sys.modules
"""


def test_public_names_are_deliberate() -> None:
    assert set(warden.resource.__all__) == EXPECTED
    for name in warden.resource.__all__:
        value = getattr(warden.resource, name)
        if getattr(value, "__module__", "").startswith("warden.resource"):
            assert value.__doc__, name


def test_resource_package_imports_with_the_base_install_only() -> None:
    proc = subprocess.run([sys.executable, "-c", BLOCK_ALL_BUT_BASE], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_fastapi_integration_is_a_separate_module() -> None:
    proc = subprocess.run([sys.executable, "-c", "import warden.resource.fastapi, sys; print('fastapi' in sys.modules)"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr
