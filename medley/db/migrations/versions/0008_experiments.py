"""experiments: experiments, their audit log, exposures; events indexed by recommendation_id
(events are credited to the answer, and so the arm, that they cite) and carrying the app's
optional session_id; offline evaluations as background jobs

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("surfaces", sa.JSON(), nullable=False),
        sa.Column("arms", sa.JSON(), nullable=False),
        sa.Column("holdout", sa.Float(), nullable=False),
        sa.Column("ramp", sa.JSON(), nullable=False),
        sa.Column("ramp_step", sa.Integer(), nullable=False),
        sa.Column("ramp_every_s", sa.Float(), nullable=False),
        sa.Column("guardrails", sa.JSON(), nullable=False),
        sa.Column("salt", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("winner", sa.String(length=40), nullable=True),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("stepped_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_experiments_status", "experiments", ["status"])
    op.create_table(
        "experiment_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_experiment_audit_experiment_id", "experiment_audit", ["experiment_id"])
    op.create_table(
        "exposures",
        sa.Column("recommendation_id", sa.String(length=36), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("surface", sa.String(length=24), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("items", sa.LargeBinary(), nullable=False),
        sa.Column("teams", sa.String(length=256), nullable=True),
        sa.Column("ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("recommendation_id"),
    )
    op.create_index("ix_exposures_experiment_id", "exposures", ["experiment_id"])
    op.create_index("ix_exposures_user_id", "exposures", ["user_id"])
    op.create_index("ix_events_recommendation_id", "events", ["recommendation_id"])
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("views", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("session_id", sa.String(length=128), nullable=True))


def downgrade() -> None:
    op.drop_table("evaluations")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("session_id")
    op.drop_index("ix_events_recommendation_id", table_name="events")
    op.drop_index("ix_exposures_user_id", table_name="exposures")
    op.drop_index("ix_exposures_experiment_id", table_name="exposures")
    op.drop_table("exposures")
    op.drop_index("ix_experiment_audit_experiment_id", table_name="experiment_audit")
    op.drop_table("experiment_audit")
    op.drop_index("ix_experiments_status", table_name="experiments")
    op.drop_table("experiments")
