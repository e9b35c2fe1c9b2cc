"""index user_preferences.updated_at and user_controls.updated_at

Revision ID: 0009
Revises: 0008
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Serving processes poll for users who stated something since they last looked (every
    # events poll, `medley/recs/stated.py`).
    op.create_index("ix_user_preferences_updated_at", "user_preferences", ["updated_at"])
    op.create_index("ix_user_controls_updated_at", "user_controls", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_user_controls_updated_at", table_name="user_controls")
    op.drop_index("ix_user_preferences_updated_at", table_name="user_preferences")
