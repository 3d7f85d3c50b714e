"""Operator accounts and web sessions in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlconnector.clock import FakeClock
from mlconnector.store import Role, Store, StoreError


async def test_create_get_list_and_delete_users(store: Store) -> None:
    ana = await store.create_user("ana", Role.OPERATOR, "$argon2id$hash-a")
    await store.create_user("bo", Role.VIEWER, "$argon2id$hash-b")
    assert ana.role is Role.OPERATOR
    assert await store.get_user("ana") == ana
    assert await store.get_user("nobody") is None
    assert [(u.name, u.role) for u in await store.list_users()] == [
        ("ana", Role.OPERATOR),
        ("bo", Role.VIEWER),
    ]
    assert "hash-a" not in repr(ana)  # the hash stays out of logs and tracebacks
    assert await store.delete_user("bo") is True
    assert await store.delete_user("bo") is False
    assert [u.name for u in await store.list_users()] == ["ana"]


async def test_a_taken_name_is_refused_with_what_to_do(store: Store) -> None:
    await store.create_user("ana", Role.VIEWER, "h1")
    with pytest.raises(StoreError) as caught:
        await store.create_user("ana", Role.OPERATOR, "h2")
    assert "already exists" in caught.value.message
    assert caught.value.hint is not None
    assert "users passwd ana" in caught.value.hint
    user = await store.get_user("ana")
    assert user is not None
    assert (user.role, user.password_hash) == (Role.VIEWER, "h1")


async def test_sessions_belong_to_a_user_and_end_with_password_change_or_removal(
    store: Store, fake_clock: FakeClock
) -> None:
    await store.create_user("ana", Role.OPERATOR, "h1")
    expires = fake_clock.now() + timedelta(hours=8)
    await store.create_session("s1", "ana", "csrf-1", expires_at=expires)
    await store.create_session("s2", "ana", "csrf-2", expires_at=expires)
    session = await store.get_session("s1")
    assert session is not None
    assert (session.user.name, session.csrf_token, session.expires_at) == ("ana", "csrf-1", expires)
    assert await store.get_session("unknown") is None

    fake_clock.advance(60)
    await store.touch_session("s1")
    touched = await store.get_session("s1")
    assert touched is not None
    assert touched.last_seen_at == fake_clock.now()

    assert await store.delete_session("s2") is True
    assert await store.count_sessions("ana") == 1
    changed = await store.set_user_password("ana", "h2")
    assert changed.password_hash == "h2"
    assert changed.updated_at == fake_clock.now()
    assert await store.count_sessions() == 0

    await store.create_session("s3", "ana", "csrf-3", expires_at=expires)
    assert await store.delete_user("ana") is True
    assert await store.get_session("s3") is None


async def test_new_sessions_sweep_expired_ones(store: Store, fake_clock: FakeClock) -> None:
    await store.create_user("ana", Role.VIEWER, "h")
    await store.create_session("old", "ana", "c", expires_at=fake_clock.now() + timedelta(hours=1))
    fake_clock.advance(3601)
    await store.create_session("new", "ana", "c", expires_at=fake_clock.now() + timedelta(hours=1))
    assert await store.get_session("old") is None
    assert await store.count_sessions() == 1


async def test_a_password_for_an_unknown_user_is_an_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no user 'ghost'"):
        await store.set_user_password("ghost", "h")
