"""``calendar``: CalDAV calendars fetched incrementally (sync tokens, else ETags) into
``external.calendar.raw`` and ``external.calendar.events.raw``, and each object's
occurrences enriched (UTC times with their zone, recurrence expanded, attendees)."""
