"""The store: models, database sessions and Alembic migrations."""
