"""The defaults of the rules for repair visits and amenity bookings.

Each community's own service hours and amenity rules are data (`conversations.community`,
kept in the `communities` table); the values here are what a new community starts from, and
the visit limits every community shares. Two leads are kept apart on purpose: a repair visit is
planned at most `VISIT_MAX_LEAD` ahead, an amenity by default at most `BOOKING_MAX_LEAD`.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Final

from conversations.datetext import DayPart

# ---- repair visits -----------------------------------------------------------------------------

# When technicians visit, unless the community's settings say otherwise.
SERVICE_HOURS_START: Final = time(8, 0)
SERVICE_HOURS_END: Final = time(20, 0)
# What "morning", "afternoon" and "evening" mean for a visit.
VISIT_DAY_PARTS: Final = {
    DayPart.MORNING: (time(9, 0), time(12, 0)),
    DayPart.AFTERNOON: (time(14, 0), time(17, 0)),
    DayPart.EVENING: (time(18, 0), time(21, 0)),
}
VISIT_MIN_LENGTH: Final = timedelta(minutes=30)
VISIT_MAX_LEAD: Final = timedelta(days=60)
# A visit asked for at one time ("tomorrow 10:00") lasts this long.
VISIT_SINGLE_TIME_LENGTH: Final = timedelta(hours=2)

# ---- amenity bookings --------------------------------------------------------------------------

BOOKING_MAX_LEAD: Final = timedelta(days=90)
BOOKING_STEP_MINUTES: Final = 30
BOOKING_MAX_MINUTES: Final = 120
