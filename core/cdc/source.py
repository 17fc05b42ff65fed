"""What every engine reads changes from: a ChangeSource.

The pgoutput stream (core.cdc.pg_source.LogicalStream), the SQL Server CDC reader
(core.cdc.mssql_source.MssqlCdcStream) and the Kafka topics reader (core.kafka.engine.KafkaSource)
implement it. The caller drives it: `poll` with a timeout (so a stop flag is honoured), and
`confirm` a transaction's end position only after the target committed it.
"""

from __future__ import annotations

from typing import Any, Protocol


class ChangeSource(Protocol):
    """A source of change items (ChangeEvents, runs, transaction ends, ...), in commit order."""

    confirmed_lsn: int  # the highest position confirmed so far
    caught_up: bool  # the last poll read everything that had arrived

    def start(self, start_lsn: int = 0) -> None:
        """Open the session and read strictly after `start_lsn` (0: where the source says)."""
        ...

    def poll(self, timeout_s: float = 0.5) -> list[Any]:
        """The items that arrived, waiting up to `timeout_s` for the first."""
        ...

    def confirm(self, lsn: int) -> None:
        """Everything up to `lsn` is applied on the target: the source may let it go."""
        ...

    def keepalive(self) -> None:
        """Keep the session alive while the caller cannot poll (back-pressure)."""
        ...

    def close(self) -> None:
        """End the session (what was not confirmed is read again on the next start)."""
        ...
