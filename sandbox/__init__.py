"""The embedded default: local vendor APIs and a local Telegram Bot API."""
