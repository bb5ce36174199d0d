"""The ledger's PostgreSQL recorder: eventsourcing's own, plus time travel in one round trip.

``select_at(id, T)`` answers "the aggregate as of T" with one query: a binary search over the
aggregate's versions run by the server (a recursive CTE, one primary-key probe per step,
reading each probed event's timestamp from its stored JSON), then the newest snapshot at or
below the version found and the events after it, up to the version found plus one (so the
caller can check the answer against the events as the application decodes them). Over a
network each round trip costs more than the whole search, and the application-side search
takes about log2(N) of them.

Installed through eventsourcing's ``PROCESS_RECORDER_TOPIC`` (infrastructure.persistence);
everything else is eventsourcing's ``PostgresProcessRecorder``.
"""

from __future__ import annotations

from datetime import datetime

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from psycopg.sql import SQL, Identifier

#: the search: (low, high) with the event at ``low`` at or before T (0: none) and the one at
#: ``high`` after it (the newest version + 1: none), halved until adjacent. An event's
#: timestamp is the "timestamp" of its stored state, an ISO 8601 string with its offset
#: (eventsourcing's JSON transcoder); a probe that finds no event ends the search unanswered.
_SELECT_AT = """
WITH RECURSIVE search (low, high) AS (
    SELECT 0::bigint, COALESCE(MAX(originator_version), 0) + 1
    FROM {events} WHERE originator_id = %(id)s
  UNION ALL
    SELECT CASE WHEN probe.stamp <= %(at)s THEN probe.version ELSE search.low END,
           CASE WHEN probe.stamp <= %(at)s THEN search.high ELSE probe.version END
    FROM search CROSS JOIN LATERAL (
        SELECT e.originator_version AS version,
               (convert_from(e.state, 'UTF8')::json #>> '{{timestamp,_data_}}')::timestamptz
                   AS stamp
        FROM {events} e
        WHERE e.originator_id = %(id)s AND e.originator_version = (search.low + search.high) / 2
    ) AS probe
    WHERE search.high - search.low > 1
), found AS (
    SELECT low AS version FROM search WHERE high - low <= 1
), snapshot AS (
    SELECT s.originator_version, s.topic, s.state FROM {snapshots} s
    WHERE s.originator_id = %(id)s AND s.originator_version <= (SELECT version FROM found)
    ORDER BY s.originator_version DESC LIMIT 1
)
SELECT 0 AS kind, version AS originator_version, NULL AS topic, NULL::bytea AS state FROM found
UNION ALL
SELECT 1, originator_version, topic, state FROM snapshot
UNION ALL
SELECT 2, e.originator_version, e.topic, e.state FROM {events} e
WHERE e.originator_id = %(id)s
  AND e.originator_version > LEAST(COALESCE((SELECT originator_version FROM snapshot), 0),
                                   (SELECT version FROM found) - 1)
  AND e.originator_version <= (SELECT version FROM found) + 1
"""


class PostgresLedgerRecorder(PostgresProcessRecorder):
    """eventsourcing's PostgreSQL process recorder (the ledger's: multi-Region replicators
    track their position in it) with :meth:`select_at`."""

    def __init__(self, datastore: PostgresDatastore, *,
                 events_table_name: str = "stored_events",
                 tracking_table_name: str = "notification_tracking") -> None:
        super().__init__(datastore, events_table_name=events_table_name,
                         tracking_table_name=tracking_table_name)
        # the application's snapshot store is the same factory's "<name>_snapshots" table
        snapshots_table_name = events_table_name.removesuffix("_events") + "_snapshots"
        schema = Identifier(self.datastore.schema)
        self.select_at_statement = SQL(_SELECT_AT).format(
            events=SQL("{}.{}").format(schema, Identifier(events_table_name)),
            snapshots=SQL("{}.{}").format(schema, Identifier(snapshots_table_name)),
        )

    def select_at(self, originator_id: str, at: datetime
                  ) -> tuple[int, StoredEvent | None, list[StoredEvent]] | None:
        """``(version, snapshot, events)``: the version the aggregate had at ``at`` (0: none
        yet), the newest snapshot at or below it (or None), and its events from the one after
        the snapshot (the version itself at least) up to the version + 1, oldest first.
        None when the search could not finish (a missing version)."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_at_statement, {"id": originator_id, "at": at}, prepare=True)
            rows = curs.fetchall()
        version, snapshot, events = None, None, []
        for row in rows:
            kind = row["kind"]
            if kind == 0:
                version = row["originator_version"]
                continue
            stored = StoredEvent(originator_id=originator_id,
                                 originator_version=row["originator_version"],
                                 topic=row["topic"], state=bytes(row["state"]))
            if kind == 1:
                snapshot = stored
            else:
                events.append(stored)
        if version is None:
            return None
        events.sort(key=lambda event: event.originator_version)
        return version, snapshot, events
