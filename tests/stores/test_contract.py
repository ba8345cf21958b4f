"""The Store contract, run over MemoryStore, RedisStore on a standalone server and
RedisStore on a 3-node cluster (the `store` fixture), all on one manual clock."""

from __future__ import annotations

import asyncio

import pytest

from service.clock import ManualClock
from service.limits import parse_limits
from service.stores.base import AdmitRequest, Store, UserProfile


def request_for(
    user: str = "alice",
    *,
    tenant: str = "acme",
    role: str = "reader",
    limits: tuple[str, ...] = ("5/minute",),
    owner_limits: tuple[str, ...] | None = None,
    tenant_limits: tuple[str, ...] = (),
    profile: UserProfile | None = None,
    scope: str = "mint",
) -> AdmitRequest:
    user_limits = {"reader": parse_limits(limits)}
    if owner_limits is not None:
        user_limits["owner"] = parse_limits(owner_limits)
    return AdmitRequest(
        tenant=tenant,
        user_id=user,
        claimed_role=role,
        user_limits=user_limits,
        tenant_limits=parse_limits(tenant_limits),
        profile=profile or UserProfile(),
        scope=scope,
    )


async def test_burst_then_refused_with_exact_values(store: Store, clock: ManualClock) -> None:
    request = request_for(limits=("5/minute",))  # emission interval 12 s

    admitted = [await store.admit(request) for _ in range(5)]
    refused = await store.admit(request)

    assert [a.allowed for a in admitted] == [True] * 5
    assert [a.outcomes[0].remaining for a in admitted] == [4, 3, 2, 1, 0]
    assert [a.outcomes[0].reset_after for a in admitted] == pytest.approx([12, 24, 36, 48, 60])
    assert not refused.allowed
    assert not refused.revoked
    assert refused.retry_after == pytest.approx(12)
    assert refused.outcomes[0].remaining == 0


async def test_refills_one_per_interval(store: Store, clock: ManualClock) -> None:
    request = request_for(limits=("5/minute",))
    for _ in range(5):
        await store.admit(request)

    clock.advance(11.9)
    early = await store.admit(request)
    clock.advance(0.1)
    one_more = await store.admit(request)
    after = await store.admit(request)

    assert not early.allowed
    assert early.retry_after == pytest.approx(0.1)
    assert one_more.allowed
    assert one_more.outcomes[0].remaining == 0
    assert not after.allowed


async def test_full_after_whole_period(store: Store, clock: ManualClock) -> None:
    request = request_for(limits=("3/second",))
    for _ in range(3):
        await store.admit(request)

    clock.advance(1.0)
    admitted = [await store.admit(request) for _ in range(4)]

    assert [a.allowed for a in admitted] == [True, True, True, False]


async def test_user_and_tenant_limits_all_or_nothing(store: Store, clock: ManualClock) -> None:
    tenant = ("3/minute",)  # interval 20 s
    alice = request_for("alice", limits=("2/minute",), tenant_limits=tenant)
    bob = request_for("bob", limits=("2/minute",), tenant_limits=tenant)
    carol = request_for("carol", limits=("2/minute",), tenant_limits=tenant)

    a = [await store.admit(alice) for _ in range(3)]  # the third: refused by alice's limit
    b = await store.admit(bob)  # the tenant's third
    c = await store.admit(carol)  # refused by the tenant: carol's own bucket untouched

    assert [x.allowed for x in a] == [True, True, False]
    assert [o.allowed for o in a[2].outcomes] == [False, True]
    assert b.allowed
    assert not c.allowed
    assert [o.allowed for o in c.outcomes] == [True, False]
    assert c.retry_after == pytest.approx(20)
    clock.advance(20)
    c2 = await store.admit(carol)
    assert c2.allowed
    # carol's refused request consumed nothing: one of two used now
    assert c2.outcomes[0].remaining == 1
    assert c2.outcomes[1].remaining == 0


async def test_tenant_limits_are_per_tenant(store: Store) -> None:
    acme = request_for("u", tenant="acme", limits=("9/minute",), tenant_limits=("1/minute",))
    globex = request_for("u", tenant="globex", limits=("9/minute",), tenant_limits=("1/minute",))

    assert (await store.admit(acme)).allowed
    assert (await store.admit(globex)).allowed
    assert not (await store.admit(acme)).allowed


async def test_scopes_have_separate_buckets(store: Store) -> None:
    mint = request_for(limits=("1/minute",))
    other = request_for(limits=("1/minute",), scope="vector_stores")

    assert (await store.admit(mint)).allowed
    assert (await store.admit(other)).allowed
    assert not (await store.admit(mint)).allowed


async def test_admin_role_overrides_claim(store: Store) -> None:
    request = request_for(role="reader", limits=("1/minute",), owner_limits=("3/minute",))
    first = await store.admit(request)
    refused = await store.admit(request)

    await store.set_role("acme", "alice", "owner")
    as_owner = [await store.admit(request) for _ in range(4)]

    assert first.role == "reader"
    assert first.allowed
    assert not refused.allowed
    assert [a.role for a in as_owner] == ["owner"] * 4
    assert [a.allowed for a in as_owner] == [True, True, True, False]
    assert as_owner[0].outcomes[0].limit.text == "3/minute"


async def test_role_without_limits_falls_back_to_claimed_role(store: Store) -> None:
    request = request_for(role="reader", limits=("2/minute",))  # no "owner" entry
    await store.admit(request)
    await store.set_role("acme", "alice", "owner")

    admission = await store.admit(request)

    assert admission.role == "owner"
    assert admission.outcomes[0].limit.text == "2/minute"
    assert admission.outcomes[0].remaining == 0


async def test_revoked_user_is_refused_and_consumes_nothing(store: Store) -> None:
    request = request_for(limits=("3/minute",), tenant_limits=("10/minute",))
    await store.admit(request)

    revoked = await store.revoke("acme", "alice")
    blocked = [await store.admit(request) for _ in range(5)]
    restored = await store.set_role("acme", "alice", "reader")
    again = await store.admit(request)

    assert revoked is not None
    assert revoked.revoked
    assert all(b.revoked and not b.allowed for b in blocked)
    assert restored is not None
    assert not restored.revoked
    assert restored.role == "reader"
    assert again.allowed
    assert [o.remaining for o in again.outcomes] == [1, 8]


async def test_revoked_among_answers_for_many_users_at_once(store: Store) -> None:
    for user in ("alice", "bob", "carol"):
        await store.admit(request_for(user=user, limits=("3/minute",)))
    await store.revoke("acme", "alice")
    await store.revoke("acme", "carol")
    await store.set_role("acme", "carol", "reader")  # restored

    revoked = await store.revoked_among("acme", ["alice", "bob", "carol", "nobody"])

    assert revoked == {"alice"}
    assert await store.revoked_among("globex", ["alice"]) == set()
    assert await store.revoked_among("acme", []) == set()


async def test_unknown_user_directory_calls(store: Store) -> None:
    assert await store.get_user("acme", "nobody") is None
    assert await store.revoke("acme", "nobody") is None
    assert await store.set_role("acme", "nobody", "owner") is None
    assert await store.get_user("acme", "nobody") is None


async def test_record_created_on_first_sight(store: Store, clock: ManualClock) -> None:
    first = request_for("u:{1}", profile=UserProfile(name="Ada", email="ada@example.com"))
    later = request_for("u:{1}", profile=UserProfile(name="Changed", email=None))

    await store.admit(first)
    clock.advance(100)
    await store.admit(later)
    record = await store.get_user("acme", "u:{1}")

    assert record is not None
    assert (record.tenant, record.id, record.name, record.email) == (
        "acme",
        "u:{1}",
        "Ada",
        "ada@example.com",
    )
    assert record.added_at == int(clock.now - 100)
    assert record.role is None
    assert not record.revoked


async def test_record_without_profile(store: Store) -> None:
    await store.admit(request_for("anon"))

    record = await store.get_user("acme", "anon")

    assert record is not None
    assert record.name is None
    assert record.email is None


async def test_record_created_even_when_refused(store: Store) -> None:
    await store.admit(request_for("x", limits=("1/minute",), tenant_limits=("1/minute",)))
    await store.admit(request_for("y", limits=("1/minute",), tenant_limits=("1/minute",)))

    assert await store.get_user("acme", "y") is not None
    page, _ = await store.list_users("acme", after=None, limit=10)
    assert [r.id for r in page] == ["x", "y"]


async def test_list_users_pages_in_id_order_without_revoked(store: Store) -> None:
    for user in ["u5", "u1", "u3", "u0", "u4", "u2", "u6"]:
        await store.admit(request_for(user))
    await store.admit(request_for("u9", tenant="globex"))
    await store.revoke("acme", "u3")

    page1, more1 = await store.list_users("acme", after=None, limit=3)
    page2, more2 = await store.list_users("acme", after=page1[-1].id, limit=3)
    page3, more3 = await store.list_users("acme", after="u5", limit=3)
    exact, more_exact = await store.list_users("acme", after=None, limit=6)

    assert [r.id for r in page1] == ["u0", "u1", "u2"]
    assert more1
    assert [r.id for r in page2] == ["u4", "u5", "u6"]
    assert not more2
    assert [r.id for r in page3] == ["u6"]
    assert not more3
    assert len(exact) == 6
    assert not more_exact
    assert await store.list_users("nobody", after=None, limit=3) == ([], False)


async def test_refund_gives_back(store: Store) -> None:
    request = request_for(limits=("2/minute",), tenant_limits=("2/minute",))
    first = await store.admit(request)
    await store.admit(request)
    refused = await store.admit(request)

    await store.refund(request, refused)  # a refused admission holds nothing
    assert not (await store.admit(request)).allowed
    await store.refund(request, first)
    again = await store.admit(request)

    assert again.allowed
    assert [o.remaining for o in again.outcomes] == [0, 0]


async def test_concurrent_admits_for_one_user_are_exact(store: Store) -> None:
    request = request_for(limits=("5/minute",), tenant_limits=("1000/minute",))

    results = await asyncio.gather(*(store.admit(request) for _ in range(200)))

    assert sum(a.allowed for a in results) == 5


async def test_concurrent_admits_against_tenant_limit_are_exact(store: Store) -> None:
    requests = [
        request_for(f"user-{i}", limits=("100/minute",), tenant_limits=("20/minute",))
        for i in range(40)
    ]

    results = await asyncio.gather(*(store.admit(r) for r in requests * 5))

    assert sum(a.allowed for a in results) == 20
    # nothing is held by refused requests: every user's own bucket shows only its admits
    probe = request_for("user-0", limits=("100/minute",), tenant_limits=("20/minute",))
    allowed_user0 = sum(
        a.allowed for a, r in zip(results, requests * 5, strict=True) if r.user_id == "user-0"
    )
    outcome = (await store.admit(probe)).outcomes[0]
    assert outcome.remaining == 100 - allowed_user0 - 1


async def test_record_keeps_the_last_claimed_role(store: Store) -> None:
    await store.admit(request_for("carol", role="reader"))
    first = await store.get_user("acme", "carol")
    assert first is not None
    assert first.claimed_role == "reader"

    await store.admit(request_for("carol", role="owner", owner_limits=("5/minute",)))
    record = await store.get_user("acme", "carol")
    assert record is not None
    assert (record.claimed_role, record.role, record.added_at) == ("owner", None, first.added_at)


async def test_a_tenant_secret_is_the_first_one_stored(store: Store) -> None:
    first = await store.tenant_secret("acme", "user_hash_key", "first-candidate")
    again = await store.tenant_secret("acme", "user_hash_key", "second-candidate")
    other_tenant = await store.tenant_secret("globex", "user_hash_key", "globex-candidate")
    other_name = await store.tenant_secret("acme", "another", "another-candidate")

    assert (first, again) == ("first-candidate", "first-candidate")
    assert other_tenant == "globex-candidate"
    assert other_name == "another-candidate"


async def test_replicas_asking_at_once_all_get_one_tenant_secret(store: Store) -> None:
    kept = await asyncio.gather(
        *(store.tenant_secret("acme", "user_hash_key", f"candidate-{n}") for n in range(20))
    )

    assert len(set(kept)) == 1
    assert kept[0].startswith("candidate-")


async def test_revoked_users_lists_the_tenants_revoked_users(store: Store) -> None:
    for user in ("alice", "bob", "carol"):
        await store.admit(request_for(user=user, limits=("3/minute",)))
    assert await store.revoked_users("acme") == set()

    await store.revoke("acme", "alice")
    await store.revoke("acme", "carol")
    await store.set_role("acme", "carol", "reader")  # restored
    await store.revoke("acme", "nobody")  # unknown: nothing recorded

    assert await store.revoked_users("acme") == {"alice"}
    assert await store.revoked_users("globex") == set()
