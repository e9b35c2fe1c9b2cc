"""fusion jobs: items a re-fusion could not write, set aside with why; modalities: started
and finished times indexed (queue progress in /healthz and the stale sweep)

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fusion_jobs") as batch:
        batch.add_column(sa.Column("set_aside", sa.JSON(), nullable=True))
    with op.batch_alter_table("modalities") as batch:
        batch.create_index("ix_modalities_started_at", ["started_at"])
        batch.create_index("ix_modalities_finished_at", ["finished_at"])


def downgrade() -> None:
    with op.batch_alter_table("modalities") as batch:
        batch.drop_index("ix_modalities_finished_at")
        batch.drop_index("ix_modalities_started_at")
    with op.batch_alter_table("fusion_jobs") as batch:
        batch.drop_column("set_aside")
