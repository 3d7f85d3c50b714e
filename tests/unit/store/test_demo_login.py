"""``demo --keep`` opens its UI with an operator account made for the throw-away demo home."""

from __future__ import annotations

from mlconnector.commands.demo import DEMO_USER, demo_login
from mlconnector.passwords import verify_password
from mlconnector.store import Role, Store


async def test_demo_login_is_an_operator_with_a_fresh_random_password(store: Store) -> None:
    password = await demo_login(store)
    user = await store.get_user(DEMO_USER)
    assert user is not None
    assert user.role is Role.OPERATOR
    assert verify_password(user.password_hash, password)
    assert len(password) >= 16  # token_urlsafe(12): 96 random bits, not a default password
