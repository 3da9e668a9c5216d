"""PostgreSQL access shared by Loom's services: versioned migrations and the pool."""

from loom.db.migrate import Migration, applied_migrations, discover, migrate
from loom.db.pool import open_pool

__all__ = ["Migration", "applied_migrations", "discover", "migrate", "open_pool"]
