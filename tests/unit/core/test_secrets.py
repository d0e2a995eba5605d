import secrets as random

from hypothesis import given
from hypothesis import strategies as st

from warden.core.secrets import (
    SECRET_LENGTH,
    SECRET_PREFIX,
    ClientSecret,
    SecretState,
    generate_secret,
    has_valid_checksum,
    hash_secret,
    secret_state,
)


def test_generated_secret_has_prefix_length_and_valid_checksum():
    secret = generate_secret(random.token_bytes)
    assert secret.startswith(SECRET_PREFIX)
    assert len(secret) == SECRET_LENGTH
    assert has_valid_checksum(secret)


def test_secrets_are_unique_and_alphanumeric_after_prefix():
    values = {generate_secret(random.token_bytes) for _ in range(200)}
    assert len(values) == 200
    assert all(v[len(SECRET_PREFIX):].isalnum() for v in values)


def test_a_single_changed_character_breaks_the_checksum():
    secret = generate_secret(random.token_bytes)
    i = len(SECRET_PREFIX) + 3
    typo = secret[:i] + ("A" if secret[i] != "A" else "B") + secret[i + 1:]
    assert not has_valid_checksum(typo)


@given(st.text(max_size=80))
def test_checksum_check_never_raises(text):
    has_valid_checksum(text)


def test_hash_is_keyed_by_the_pepper():
    assert hash_secret(b"a" * 32, "s") != hash_secret(b"b" * 32, "s")
    assert hash_secret(b"a" * 32, "s") == hash_secret(b"a" * 32, "s")


def test_secret_state_follows_expiry_and_revocation():
    base = ClientSecret("sec_1", "c", b"h", created_at=0)
    assert secret_state(base, 100) is SecretState.ACTIVE
    assert secret_state(ClientSecret("s", "c", b"h", 0, expires_at=100), 99.9) is SecretState.ACTIVE
    assert secret_state(ClientSecret("s", "c", b"h", 0, expires_at=100), 100) is SecretState.EXPIRED
    assert secret_state(ClientSecret("s", "c", b"h", 0, revoked_at=5), 1) is SecretState.REVOKED


def test_registration_credentials_have_their_own_prefix_and_checksum():
    import secrets as random

    from warden.core.secrets import (
        CREDENTIAL_PREFIXES,
        INITIAL_ACCESS_TOKEN_PREFIX,
        REGISTRATION_ACCESS_TOKEN_PREFIX,
        SECRET_LENGTH,
        generate_secret,
        has_valid_checksum,
    )

    for prefix in (INITIAL_ACCESS_TOKEN_PREFIX, REGISTRATION_ACCESS_TOKEN_PREFIX):
        value = generate_secret(random.token_bytes, prefix)
        assert value.startswith(prefix) and len(value) == SECRET_LENGTH  # 36 base62 characters: 214 bits (T30)
        assert has_valid_checksum(value, prefix)
        assert not has_valid_checksum(value)  # a registration credential is no client secret
        assert not has_valid_checksum(value.replace(prefix, "wsec_"), "wsec_")
    assert len({len(p) for p in CREDENTIAL_PREFIXES}) == 1
