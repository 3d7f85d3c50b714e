"""Operator passwords: argon2id hashes (argon2-cffi), the account name rule, the length rule.

The store keeps only the PHC string :func:`hash_password` returns. :func:`verify_password` also
runs for a login with an unknown name (against :func:`dummy_hash`), so a wrong name costs as much
as a wrong password and timing does not tell which accounts exist.
"""

from __future__ import annotations

import functools
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

#: account names: what people type at a login prompt (an e-mail address works too)
USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{0,63}$")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024


@functools.cache
def hasher() -> PasswordHasher:
    """argon2id with the library's RFC 9106 "low memory" defaults (about 50 ms per hash)."""
    return PasswordHasher()


def check_user_name(name: str) -> str:
    """The name, lower-cased, or ``ValueError`` saying what a name may contain."""
    lowered = name.strip().lower()
    if not USER_NAME.match(lowered):
        raise ValueError(
            f"user name {name[:70]!r} must be 1-64 characters: lower-case letters, digits and "
            "'.', '_', '@', '+', '-', starting with a letter or digit"
        )
    return lowered


def check_password(password: str) -> str:
    """The password, or ``ValueError`` when it is too short or too long (never echoing it)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    """An argon2id PHC string for ``password`` (salted: two calls give two strings)."""
    return hasher().hash(password)


@functools.cache
def dummy_hash() -> str:
    """A hash no password is known for, verified when the account does not exist."""
    return hasher().hash("no account has this password: it only costs the same time")


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches; ``False`` for a damaged hash too."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
