"""pipelines.sink: who applies a kafka_connect pipeline's changes (studio or a Connect JDBC sink)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('pipelines') as batch:
        batch.add_column(sa.Column('sink', sa.String(length=20), nullable=False, server_default='studio'))


def downgrade() -> None:
    with op.batch_alter_table('pipelines') as batch:
        batch.drop_column('sink')
