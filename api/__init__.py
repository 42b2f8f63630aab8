"""Vendor clients: pure I/O against Akubela, Tuya osaas and Servitly; no Telegram, no database."""
