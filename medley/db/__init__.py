"""Item records in SQLite (embedded) or PostgreSQL, through SQLAlchemy and Alembic."""

from medley.db.session import Database

__all__ = ["Database"]
