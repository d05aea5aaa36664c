"""The task queue reads a partial index of open tasks, in page order

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

``ix_task_open (role, org_path, due_at, id) WHERE status = 'open'`` replaces
``ix_task_queue (status, role, org_path, due_at)``: closed tasks (most of the table) leave
the index, and one membership's tasks at one unit are read already ordered by due time and
id, so 我的待办 stops after the rows its page needs. On PostgreSQL the index also carries
``instance_id`` (INCLUDE), so the scan does not visit the task rows.
"""

from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_queue")
        batch_op.create_index(
            "ix_task_open",
            ["role", "org_path", "due_at", "id"],
            unique=False,
            postgresql_include=["instance_id"],
            postgresql_where=OPEN,
            sqlite_where=OPEN,
        )


def downgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_open")
        batch_op.create_index("ix_task_queue", ["status", "role", "org_path", "due_at"], unique=False)
