"""Alembic migrations of the Concierge schema; applied by bot.storage.migrate.upgrade."""
