"""The connector's state store and credential vault.

Everything the sync engine, CLI and web UI persist goes through one object, :class:`Store`
(all SQL lives in ``repository.py``), opened with :func:`open_store`, which migrates the database
to head. SQLite (``{MLCONNECTOR_HOME}/mlconnector.db``) is the embedded default; PostgreSQL via
``MLCONNECTOR_DATABASE_URL`` is the scale-out backend. Credentials are Fernet-encrypted by a
:class:`Vault` whose master key never enters the database.

Typical start-up::

    env = dict(os.environ)
    init_home(env)
    vault = load_vault(env)
    store = await open_store(database_url(env), clock=SystemClock(), vault=vault)
"""

from mlconnector.store.engine import (
    DATABASE_URL_ENV,
    create_engine,
    database_url,
    migrate,
    normalize_url,
    open_store,
)
from mlconnector.store.exceptions import (
    OperationStateError,
    StoreError,
    UnknownConnectionError,
)
from mlconnector.store.queries import ErrorGroup, OperationFilter, Page, error_cause
from mlconnector.store.records import (
    AuditEvent,
    AuditQuery,
    Connection,
    CredentialInfo,
    CredentialKind,
    Cursor,
    Enqueued,
    InboxItem,
    Link,
    Operation,
    OperationState,
    Quarantined,
    QuarantineEntry,
    QuarantineState,
    Received,
    Role,
    Run,
    ShipmentLine,
    StagedLine,
    StagedWrite,
    User,
    WalCheckpoint,
    WebSession,
)
from mlconnector.store.repository import Store
from mlconnector.store.vault import (
    HOME_ENV,
    MASTER_KEY_ENV,
    Vault,
    generate_key,
    home_dir,
    init_home,
    key_file,
    load_vault,
    rotate_keys,
)

__all__ = [
    "DATABASE_URL_ENV",
    "HOME_ENV",
    "MASTER_KEY_ENV",
    "AuditEvent",
    "AuditQuery",
    "Connection",
    "CredentialInfo",
    "CredentialKind",
    "Cursor",
    "Enqueued",
    "ErrorGroup",
    "InboxItem",
    "Link",
    "Operation",
    "OperationFilter",
    "OperationState",
    "OperationStateError",
    "Page",
    "QuarantineEntry",
    "QuarantineState",
    "Quarantined",
    "Received",
    "Role",
    "Run",
    "ShipmentLine",
    "StagedLine",
    "StagedWrite",
    "Store",
    "StoreError",
    "UnknownConnectionError",
    "User",
    "Vault",
    "WalCheckpoint",
    "WebSession",
    "create_engine",
    "database_url",
    "error_cause",
    "generate_key",
    "home_dir",
    "init_home",
    "key_file",
    "load_vault",
    "migrate",
    "normalize_url",
    "open_store",
    "rotate_keys",
]
