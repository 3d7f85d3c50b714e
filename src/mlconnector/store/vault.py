"""The credential vault: Fernet encryption under a master key that never enters the database.

The master key comes from ``MLCONNECTOR_MASTER_KEY`` (one key, or several separated by commas,
newest first), else from the file ``{home}/master.key`` written by :func:`init_home` with mode
0600. The file may hold several keys, one per line, newest first: during a rotation it holds the
new and the old key, so a crash at any instant leaves every credential readable.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mlconnector.errors import VaultError

if TYPE_CHECKING:
    from mlconnector.store.repository import Store

MASTER_KEY_ENV = "MLCONNECTOR_MASTER_KEY"
HOME_ENV = "MLCONNECTOR_HOME"
KEY_FILE = "master.key"
BACKUP_SUFFIX = ".bak"


def home_dir(env: Mapping[str, str]) -> Path:
    """``MLCONNECTOR_HOME``, else ``~/.mlconnector`` (``~`` from ``HOME`` in ``env`` if set)."""
    if env.get(HOME_ENV):
        return Path(env[HOME_ENV]).expanduser()
    base = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return base / ".mlconnector"


def key_file(env: Mapping[str, str]) -> Path:
    """Where the master key file lives for this environment."""
    return home_dir(env) / KEY_FILE


def generate_key() -> bytes:
    """A new random Fernet key (URL-safe base64, 32 bytes of entropy)."""
    return Fernet.generate_key()


def key_version(key: bytes) -> str:
    """A short public fingerprint of a key (not reversible), stored next to each ciphertext."""
    return hashlib.sha256(key).hexdigest()[:12]


class Vault:
    """Encrypts with the first key; decrypts with any (MultiFernet).

    ``source`` names where the keys came from, for error messages; ``path`` is the key file, or
    ``None`` when the keys came from the environment.
    """

    def __init__(self, keys: Sequence[bytes], *, source: str, path: Path | None = None) -> None:
        if not keys:
            raise VaultError(f"no master key in {source}", hint=_FIX)
        fernets = []
        for key in keys:
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError) as exc:
                raise VaultError(
                    f"the master key in {source} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes)",
                    hint=_FIX,
                ) from exc
        self._keys = tuple(keys)
        self._fernet = MultiFernet(fernets)
        self.source = source
        self.path = path

    @property
    def key_version(self) -> str:
        """Fingerprint of the key new ciphertexts are made with."""
        return key_version(self._keys[0])

    @property
    def keys(self) -> tuple[bytes, ...]:
        """The keys, newest first (needed by rotation only)."""
        return self._keys

    def encrypt(self, secret: str) -> str:
        """A Fernet token (ASCII) for ``secret``."""
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str, *, record: str | None = None) -> str:
        """The secret in ``token``; :class:`VaultError` if no key of this vault opens it."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise VaultError(
                f"cannot decrypt {record or 'a credential'} with the master key from "
                f"{self.source} (key version {self.key_version}): the key is wrong, or the "
                "credential was encrypted under another key",
                record=record,
                hint=f"set {MASTER_KEY_ENV} (or restore the key file) to the key the credentials "
                "were stored with; if it is lost, set the credentials again",
            ) from exc


_FIX = (
    f"set {MASTER_KEY_ENV} to the key the credentials were stored with, "
    "or run `mlconnector init` to create a key file"
)


def load_vault(env: Mapping[str, str]) -> Vault:
    """The vault for this environment: ``MLCONNECTOR_MASTER_KEY``, else ``{home}/master.key``.

    :class:`VaultError` when neither exists, the key is malformed, or the key file is readable
    by other users.
    """
    if env.get(MASTER_KEY_ENV):
        keys = [k.strip().encode("ascii") for k in env[MASTER_KEY_ENV].split(",") if k.strip()]
        return Vault(keys, source=f"the environment variable {MASTER_KEY_ENV}")
    path = key_file(env)
    if not path.exists():
        raise VaultError(
            f"no master key: {MASTER_KEY_ENV} is not set and {path} does not exist",
            hint=f"run `mlconnector init` to create {path}, or set {MASTER_KEY_ENV}",
        )
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise VaultError(
            f"the master key file {path} is readable by other users "
            f"(mode {path.stat().st_mode & 0o777:o})",
            hint=f"run `chmod 600 {path}`",
        )
    return Vault(_read_keys(path), source=f"the key file {path}", path=path)


def _read_keys(path: Path) -> list[bytes]:
    return [line.strip().encode("ascii") for line in path.read_text("ascii").splitlines() if line]


def _write_keys(path: Path, keys: Sequence[bytes]) -> None:
    """Atomically replace ``path`` with ``keys`` (one per line), mode 0600 from the start."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(b"".join(k + b"\n" for k in keys))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def init_home(env: Mapping[str, str]) -> Path:
    """Create the home folder (mode 0700) and, unless the key comes from the environment or a key
    file exists, a new master key file (mode 0600). Never overwrites a key. Returns the home."""
    home = home_dir(env)
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    path = home / KEY_FILE
    if not env.get(MASTER_KEY_ENV) and not path.exists():
        _write_keys(path, [generate_key()])
    return home


async def rotate_keys(store: Store, old_vault: Vault, new_key: bytes | None = None) -> Vault:
    """Re-encrypt every credential under ``new_key`` (a new random key if ``None``); all or
    nothing. Returns the new vault.

    With a key file: the file first holds ``[new, old…]`` (a copy of the old file stays as
    ``master.key.bak``), then every credential is re-encrypted in one transaction, then the file
    holds only the new key and the backup is removed. If the re-encryption fails, the old file is
    put back (or, if the database already holds new-key ciphertext, ``[new, old]`` is kept).

    With ``MLCONNECTOR_MASTER_KEY`` nothing is written to disk: set the variable to the new key
    (``new_vault.keys[0]``) after this returns.
    """
    new_key = new_key or generate_key()
    new_vault = Vault([new_key], source=old_vault.source, path=old_vault.path)
    rotating = Vault([new_key, *old_vault.keys], source=old_vault.source, path=old_vault.path)

    def reencrypt(token: str, record: str) -> tuple[str, str]:
        return new_vault.encrypt(old_vault.decrypt(token, record=record)), new_vault.key_version

    # Prove every credential opens before anything is touched (a wrong key raises here).
    await store.verify_credentials(old_vault)
    path = old_vault.path
    if path is None:
        await store.reencrypt_credentials(reencrypt)
        return new_vault
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    shutil.copy2(path, backup)
    _write_keys(path, rotating.keys)
    try:
        await store.reencrypt_credentials(reencrypt)
    except BaseException:
        await _recover(store, old_vault, path, backup)
        raise
    _write_keys(path, [new_key])
    backup.unlink()
    return new_vault


async def _recover(store: Store, old_vault: Vault, path: Path, backup: Path) -> None:
    """After a failed re-encryption: put the old key file back only if the database provably still
    holds old-key ciphertext (the transaction may have committed before the failure surfaced, e.g.
    a cancellation during COMMIT). Otherwise keep ``[new, old]``, which opens both."""
    try:
        await store.verify_credentials(old_vault)
    except Exception:  # noqa: BLE001 (any doubt: keep the key file that opens everything)
        return
    os.replace(backup, path)
