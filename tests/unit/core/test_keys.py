from warden.core.keys import KeyState, SigningKey, plan_rotation, plan_scheduled, removable_keys


def key(kid, state, created=0.0, activated=None, retired=None, alg="ES256"):
    return SigningKey(kid, alg, state, {}, b"", created, activated, retired)


def test_rotation_promotes_next_retires_active_and_creates_a_new_next():
    plan = plan_rotation([key("a", KeyState.ACTIVE), key("n", KeyState.NEXT, 1)], "ES256")
    assert plan.activate == "n" and plan.retire == ("a",) and plan.create_next


def test_rotation_only_touches_its_algorithm():
    plan = plan_rotation([key("a", KeyState.ACTIVE), key("r", KeyState.ACTIVE, alg="RS256")], "ES256")
    assert plan.retire == ("a",) and plan.activate is None


def test_scheduled_rotation_waits_for_interval_and_publish_lead():
    keys = [key("a", KeyState.ACTIVE, 0, activated=0), key("n", KeyState.NEXT, 1000)]
    assert plan_scheduled(keys, "ES256", 500, interval=3600, publish_lead=900) is None
    assert plan_scheduled(keys, "ES256", 3700, interval=3600, publish_lead=900) is not None
    # interval passed but next key published too recently
    keys = [key("a", KeyState.ACTIVE, 0, activated=0), key("n", KeyState.NEXT, 3500)]
    assert plan_scheduled(keys, "ES256", 3700, interval=3600, publish_lead=900) is None


def test_scheduled_creates_missing_next_key():
    plan = plan_scheduled([key("a", KeyState.ACTIVE, 0, 0)], "ES256", 10, interval=3600, publish_lead=900)
    assert plan is not None and plan.activate is None and plan.create_next


def test_retired_keys_are_removed_only_after_their_tokens_expire():
    keys = [key("r", KeyState.RETIRED, retired=1000), key("a", KeyState.ACTIVE)]
    assert removable_keys(keys, 1000 + 900 + 30, max_token_ttl=900, leeway=60) == []
    assert removable_keys(keys, 1000 + 900 + 61, max_token_ttl=900, leeway=60) == ["r"]
