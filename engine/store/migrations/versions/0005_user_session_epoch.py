"""Sessions end at logout: each user has a session epoch that logout raises

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

A session cookie names the epoch it was issued in; ``web.auth.load_user`` refuses one from
an older epoch, so a cookie copied before logout no longer logs anyone in.
"""

from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.drop_column("session_epoch")
