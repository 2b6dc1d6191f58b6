"""Storage: `Store` (queries, schema, retention) and `StoreWriter` (the batched writer task)."""

from yolowatch.store.database import STORE_ERRORS
from yolowatch.store.logs import LogPage
from yolowatch.store.schema import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew
from yolowatch.store.store import Store
from yolowatch.store.writer import StoreWriter, WriterStats

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STORE_ERRORS",
    "LogPage",
    "SchemaTooNew",
    "Store",
    "StoreWriter",
    "WriterStats",
]
