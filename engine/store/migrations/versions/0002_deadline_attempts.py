"""deadline rows record failed scheduler attempts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 05:00:00

A row whose action fails stays pending and is retried on the next scan; ``attempts``
counts the failures and ``last_error`` keeps the last one, for the operator.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deadline', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deadline', schema=None) as batch_op:
        batch_op.drop_column('last_error')
        batch_op.drop_column('attempts')
