"""Full loads: auto-create target tables, copy tables at COPY speed, report progress per table.

The public surface other modules code against; the parts live in submodules:
`prepare` (source columns, type mapping, target schemas and enums, previews), `paths` (one copy
path per pair of database kinds), `pipe` (the bounded hand-over between reader and writer),
`runner` (parallel scheduling in foreign-key order, progress, cancel).
"""

from core.fullload.model import FullLoadResult, LoadOptions, TablePlan, TableProgress
from core.fullload.prepare import compare_columns, plan_target_ddl
from core.fullload.runner import run_full_load

__all__ = [
    "FullLoadResult",
    "LoadOptions",
    "TablePlan",
    "TableProgress",
    "compare_columns",
    "plan_target_ddl",
    "run_full_load",
]
