"""Password hashes for the accounts tests create to log in with.

:func:`mlconnector.passwords.hash_password` costs about 0.2 s of CPU per hash and as much again
for every login that verifies it (argon2id, RFC 9106 "low memory" parameters). A test that only
needs an account to exist gets :func:`account_hash` instead: an argon2id PHC string of the same
password with the smallest cost parameters argon2 allows. The connector's own
:func:`~mlconnector.passwords.verify_password` checks it (argon2 reads the parameters from the
string), so logins still go through the real verification. The production parameters stay
covered where hashing is the point: ``mlconnector users`` (``tests/unit/cli/test_users.py``), the
demo account (``tests/unit/store/test_demo_login.py``) and the browser's login page tests
(``tests/browser/test_login.py``) hash with ``hash_password``.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher

_CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@functools.cache
def account_hash(password: str) -> str:
    """A cheap argon2id hash of ``password`` (the same string for the same password)."""
    return _CHEAP.hash(password)
