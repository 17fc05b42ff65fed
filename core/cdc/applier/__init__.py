"""Apply change events to a target database: net change per key, COPY to staging, set-based SQL.

`PgApplier` is the PostgreSQL target; the applied source position is stored on the target
(`core.cdc.offsets`) in the same transaction as the rows.
"""

from core.cdc.applier.catalog import SchemaMismatch, TargetTable
from core.cdc.applier.pg import ApplyStats, PgApplier

__all__ = ["ApplyStats", "PgApplier", "SchemaMismatch", "TargetTable"]
