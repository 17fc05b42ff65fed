"""data checks: validations of a pipeline's tables, their per-table states and the confirmed mismatched rows

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('data_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline_id', sa.Integer(), nullable=False),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('tables', sa.JSON(), nullable=False),
    sa.Column('recheck_after_seconds', sa.Float(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_data_checks_pipeline_id'), 'data_checks', ['pipeline_id'], unique=False)
    op.create_index(op.f('ix_data_checks_status'), 'data_checks', ['status'], unique=False)
    op.create_table('data_check_tables',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('check_id', sa.Integer(), nullable=False),
    sa.Column('pipeline_id', sa.Integer(), nullable=False),
    sa.Column('table', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('source_rows', sa.BigInteger(), nullable=True),
    sa.Column('target_rows', sa.BigInteger(), nullable=True),
    sa.Column('mismatched_rows', sa.Integer(), nullable=False),
    sa.Column('segments', sa.Integer(), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('validated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['check_id'], ['data_checks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_data_check_tables_check_id'), 'data_check_tables', ['check_id'], unique=False)
    op.create_index(op.f('ix_data_check_tables_pipeline_id'), 'data_check_tables', ['pipeline_id'], unique=False)
    op.create_table('data_mismatches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('check_id', sa.Integer(), nullable=False),
    sa.Column('table', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('key', sa.JSON(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('columns', sa.JSON(), nullable=False),
    sa.Column('source', sa.JSON(), nullable=True),
    sa.Column('target', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['check_id'], ['data_checks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_data_mismatches_check_id'), 'data_mismatches', ['check_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_data_mismatches_check_id'), table_name='data_mismatches')
    op.drop_table('data_mismatches')
    op.drop_index(op.f('ix_data_check_tables_pipeline_id'), table_name='data_check_tables')
    op.drop_index(op.f('ix_data_check_tables_check_id'), table_name='data_check_tables')
    op.drop_table('data_check_tables')
    op.drop_index(op.f('ix_data_checks_status'), table_name='data_checks')
    op.drop_index(op.f('ix_data_checks_pipeline_id'), table_name='data_checks')
    op.drop_table('data_checks')
