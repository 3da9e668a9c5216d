"""``store``: the sink of the graph. Each event of a stored type becomes one row.

Concurrent deliveries are coalesced into one COPY per table and one commit (group
commit); a delivery is answered only after its row is committed. Redeliveries
and replays add nothing (the key is the CloudEvent source + id + time).
"""

from __future__ import annotations

from loom.catalog import default_catalog
from loom.runtime.context import Context
from loom.runtime.event import Event
from loom.runtime.registry import function
from loom.store import open_store


@function(
    name="store",
    consumes=[t.type for t in default_catalog().stored()],
    lifespan=open_store,
    concurrency=200,  # many deliveries in flight make big group commits
    retries=12,  # a database outage is waited out: 1 s doubling 12 times, about 68 min
)
async def handle(event: Event, ctx: Context) -> None:
    """Writes every stored event type to its table, once."""
    await ctx.state.writer.write(event)
