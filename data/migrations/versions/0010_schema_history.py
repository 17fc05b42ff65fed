"""schema history: every detected change of a pipeline's source schema; pipelines.validation_schedule

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('schema_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline_id', sa.Integer(), nullable=False),
    sa.Column('table', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('column', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('before', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('after', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('detected_by', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('policy', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('detected_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_schema_changes_pipeline_id'), 'schema_changes', ['pipeline_id'], unique=False)
    op.create_index(op.f('ix_schema_changes_detected_at'), 'schema_changes', ['detected_at'], unique=False)
    with op.batch_alter_table('pipelines') as batch:
        batch.add_column(sa.Column('validation_schedule', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pipelines') as batch:
        batch.drop_column('validation_schedule')
    op.drop_index(op.f('ix_schema_changes_detected_at'), table_name='schema_changes')
    op.drop_index(op.f('ix_schema_changes_pipeline_id'), table_name='schema_changes')
    op.drop_table('schema_changes')
