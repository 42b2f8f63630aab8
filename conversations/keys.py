"""Names that outlive a release: each flow's persisted key, declared once.

One string per flow serves three stored things at once, and each of them is read back after an
upgrade: the conversation's name in persistence (`conversations` rows), the kind of its draft
(`drafts` rows, and the draft a recorded write hands over), and the job of its buttons' callback
data (buttons already in a chat are pressed after an upgrade). So these values never change
with a module or function name; renaming a flow means keeping its key. The step names that are
persisted with a conversation are the values of each flow's `State` enum, stable the same way.
"""

from __future__ import annotations

from typing import Final

REPAIR: Final = "repair"
REPAIRS: Final = "repairs"
BOOK: Final = "book"
BOOKINGS: Final = "bookings"
TASKS: Final = "tasks"
ASSIGN: Final = "assign"
REPAIRS_ALL: Final = "repairs_all"
BOOKINGS_PENDING: Final = "bookings_pending"
MENU: Final = "menu"
"""The menu's buttons: `menu:<flow key>` starts that flow."""

DRAFTING: Final = frozenset({REPAIR, BOOK, ASSIGN})
"""Flows that build something (their exit abandons a draft: "Stop"); the others are views
(their exit leaves them: "Close")."""
