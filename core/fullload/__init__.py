"""Full loads: auto-create target tables, copy tables at COPY speed, report progress per table.

The public surface other modules code against; the parts live in submodules:
`prepare` (source columns, type mapping, target schemas, enums and domains decided by trying,
previews), `findings` (what validation reports per table), `reconcile` (schema evolution of existing
target tables), `paths` (one copy
path per pair of database kinds), `pipe` (the bounded hand-over between reader and writer),
`runner` (parallel scheduling in foreign-key order, progress, cancel).
"""

from core.fullload.findings import table_findings
from core.fullload.model import Finding, FullLoadResult, LoadOptions, TablePlan, TableProgress
from core.fullload.prepare import compare_columns, plan_target_ddl
from core.fullload.reconcile import reconcile_table
from core.fullload.runner import run_full_load

__all__ = [
    "Finding",
    "FullLoadResult",
    "LoadOptions",
    "TablePlan",
    "TableProgress",
    "compare_columns",
    "plan_target_ddl",
    "reconcile_table",
    "run_full_load",
    "table_findings",
]
