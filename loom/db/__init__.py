"""PostgreSQL access shared by Loom's services: versioned migrations."""

from loom.db.migrate import Migration, applied_migrations, discover, migrate

__all__ = ["Migration", "applied_migrations", "discover", "migrate"]
