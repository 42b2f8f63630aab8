"""Wiring: settings, CLI, application, storage, persistence, roles, alerts, i18n."""
