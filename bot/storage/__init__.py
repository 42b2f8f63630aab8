"""Storage: the SQLAlchemy models, the engine and session factory, migrations, repositories."""
