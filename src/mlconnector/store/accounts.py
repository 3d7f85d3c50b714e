"""The SQL of the web UI's operator accounts and sessions (part of the ``Store``).

Kept apart from ``repository.py`` only for size; the :class:`Store` inherits these methods and
they follow its rules (one short transaction each, times from the injected clock). Passwords
arrive already hashed: the store never sees one in clear.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from mlconnector.store.exceptions import StoreError
from mlconnector.store.lane import Connects
from mlconnector.store.records import Role, User, WebSession
from mlconnector.store.schema import users, web_sessions

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


def to_user(row: Row[Any]) -> User:
    """The :class:`User` in a ``users`` row."""
    return User(
        name=row.name,
        role=Role(row.role),
        password_hash=row.password_hash,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class AccountsRepository:
    """Operator accounts (``users``) and their server-side sessions (``web_sessions``)."""

    if TYPE_CHECKING:
        _reader: Connects

        def _now(self, now: datetime | None) -> datetime: ...

        def _write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

    # --- accounts ------------------------------------------------------------------------------
    async def create_user(
        self, name: str, role: Role, password_hash: str, *, now: datetime | None = None
    ) -> User:
        """A new account; :class:`StoreError` when the name is taken."""
        now = self._now(now)
        values = {
            "name": name,
            "role": Role(role).value,
            "password_hash": password_hash,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self._write() as conn:
                row = (await conn.execute(users.insert().values(values).returning(users))).one()
        except IntegrityError as exc:
            raise StoreError(
                f"user {name!r} already exists",
                record=f"user {name}",
                hint=f"change the password with `mlconnector users passwd {name}`, or remove "
                f"the account first with `mlconnector users remove {name}`",
            ) from exc
        return to_user(row)

    async def get_user(self, name: str) -> User | None:
        """One account by name."""
        async with self._reader.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.name == name))).first()
        return to_user(row) if row else None

    async def list_users(self) -> list[User]:
        """Every account, by name."""
        async with self._reader.connect() as conn:
            return [to_user(r) for r in await conn.execute(select(users).order_by(users.c.name))]

    async def delete_user(self, name: str) -> bool:
        """Remove an account and its sessions; ``True`` if there was one."""
        async with self._write() as conn:
            await conn.execute(delete(web_sessions).where(web_sessions.c.user_name == name))
            result = await conn.execute(delete(users).where(users.c.name == name))
        return result.rowcount > 0

    async def set_user_password(
        self, name: str, password_hash: str, *, now: datetime | None = None
    ) -> User:
        """Replace an account's password hash and end all of its sessions."""
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(users)
                    .where(users.c.name == name)
                    .values(password_hash=password_hash, updated_at=self._now(now))
                    .returning(users)
                )
            ).first()
            if row is None:
                raise StoreError(
                    f"no user {name!r}",
                    record=f"user {name}",
                    hint="list the accounts with `mlconnector users list`",
                )
            await conn.execute(delete(web_sessions).where(web_sessions.c.user_name == name))
        return to_user(row)

    # --- sessions ------------------------------------------------------------------------------
    async def create_session(
        self,
        id_hash: str,
        user: str,
        csrf_token: str,
        *,
        expires_at: datetime,
        now: datetime | None = None,
    ) -> None:
        """Store a new session (keyed by the hash of its cookie value); expired ones go."""
        now = self._now(now)
        async with self._write() as conn:
            await conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))
            await conn.execute(
                web_sessions.insert().values(
                    id_hash=id_hash,
                    user_name=user,
                    csrf_token=csrf_token,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires_at,
                )
            )

    async def get_session(self, id_hash: str) -> WebSession | None:
        """The session with this hash and its account (expired ones too: the caller decides)."""
        query = (
            select(web_sessions, users)
            .join(users, users.c.name == web_sessions.c.user_name)
            .where(web_sessions.c.id_hash == id_hash)
        )
        async with self._reader.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return WebSession(
            user=to_user(row),
            csrf_token=row.csrf_token,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            expires_at=row.expires_at,
        )

    async def touch_session(self, id_hash: str, *, now: datetime | None = None) -> None:
        """Record that the session was used (its idle time starts again)."""
        async with self._write() as conn:
            await conn.execute(
                update(web_sessions)
                .where(web_sessions.c.id_hash == id_hash)
                .values(last_seen_at=self._now(now))
            )

    async def delete_session(self, id_hash: str) -> bool:
        """End one session (logout); ``True`` if it existed."""
        async with self._write() as conn:
            result = await conn.execute(
                delete(web_sessions).where(web_sessions.c.id_hash == id_hash)
            )
        return result.rowcount > 0

    async def count_sessions(self, user: str | None = None) -> int:
        """How many sessions exist (of ``user``, or of everyone), expired ones included."""
        query = select(func.count()).select_from(web_sessions)
        if user is not None:
            query = query.where(web_sessions.c.user_name == user)
        async with self._reader.connect() as conn:
            return int((await conn.execute(query)).scalar_one())
