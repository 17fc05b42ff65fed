"""pipelines: on_table_error, schema_drift, slot_name (unique per pipeline for good), ids never reused

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Existing CDC pipelines keep the slot and publication they already own (`cdc_studio_p<id>`); new
ones get a name that is never given twice. SQLite reused the id of the last deleted row: the
table is rebuilt with AUTOINCREMENT so a deleted pipeline's id (and what was keyed by it on a
target) never comes back.
"""
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == 'sqlite'
    kwargs: dict[str, Any] = {'recreate': 'always', 'table_kwargs': {'sqlite_autoincrement': True}} if sqlite else {}
    with op.batch_alter_table('pipelines', **kwargs) as batch:
        batch.add_column(sa.Column('on_table_error', sa.String(length=20), nullable=False,
                                   server_default='continue'))
        batch.add_column(sa.Column('schema_drift', sa.String(length=30), nullable=False,
                                   server_default='propagate_columns'))
        batch.add_column(sa.Column('slot_name', sa.String(length=63), nullable=True))
    op.execute("UPDATE pipelines SET slot_name = 'cdc_studio_p' || CAST(id AS VARCHAR) WHERE slot_name IS NULL")
    with op.batch_alter_table('pipeline_tables') as batch:
        batch.add_column(sa.Column('cdc_since_lsn', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pipeline_tables') as batch:
        batch.drop_column('cdc_since_lsn')
    with op.batch_alter_table('pipelines') as batch:
        batch.drop_column('slot_name')
        batch.drop_column('schema_drift')
        batch.drop_column('on_table_error')
