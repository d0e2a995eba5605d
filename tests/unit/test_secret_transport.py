"""A Secret crosses to `warden serve` workers through the spawn pipe, and nowhere else by pickling."""

import io
import pickle
from multiprocessing.reduction import ForkingPickler

import pytest

import warden.server.supervisor  # noqa: F401  (registers the worker transport)
from warden.secret import Secret
from warden.settings import load_settings


def test_settings_with_secrets_reach_workers_through_multiprocessing():
    settings = load_settings(environ={"WARDEN_DATABASE_URL": "postgresql://u:pw@db/warden",
                                      "WARDEN_KEYS_ENCRYPTION_KEY": "q3mCUvYsZyQ1XzX5n1QzY4uQ8i7V7Jm2dB9Y9c5Wc0E"})
    buffer = io.BytesIO()
    ForkingPickler(buffer).dump(settings)
    again = pickle.loads(buffer.getvalue())
    assert again.database_url.reveal() == "postgresql://u:pw@db/warden"
    assert again.keys.encryption_key == settings.keys.encryption_key


def test_plain_pickling_still_refuses_a_secret():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret("hunter2"))
