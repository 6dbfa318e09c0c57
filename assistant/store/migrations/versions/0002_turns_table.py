"""A conversation's turns in their own table: a turn appends one row instead of rewriting the whole history.

Revision ID: 0002
Revises: 0001
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

conversations = sa.table("conversations", sa.column("id", sa.String), sa.column("state", sa.Text))
turns = sa.table("conversation_turns", sa.column("conversation_id", sa.String), sa.column("position", sa.Integer),
                 sa.column("turn", sa.Text))


def upgrade() -> None:
    op.create_table(
        "conversation_turns",
        sa.Column("conversation_id", sa.String(32), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True),
        sa.Column("turn", sa.Text(), nullable=False),
    )
    connection = op.get_bind()
    for conversation_id, state in connection.execute(sa.select(conversations.c.id, conversations.c.state)).all():
        data = json.loads(state)
        history = data.pop("turns", [])
        if history:
            connection.execute(turns.insert(), [{"conversation_id": conversation_id, "position": position,
                                                 "turn": json.dumps(turn)} for position, turn in enumerate(history)])
        connection.execute(conversations.update().where(conversations.c.id == conversation_id)
                           .values(state=json.dumps(data)))


def downgrade() -> None:
    connection = op.get_bind()
    for conversation_id, state in connection.execute(sa.select(conversations.c.id, conversations.c.state)).all():
        history = connection.execute(sa.select(turns.c.turn).where(turns.c.conversation_id == conversation_id)
                                     .order_by(turns.c.position)).scalars().all()
        data = {**json.loads(state), "turns": [json.loads(turn) for turn in history]}
        connection.execute(conversations.update().where(conversations.c.id == conversation_id)
                           .values(state=json.dumps(data)))
    op.drop_table("conversation_turns")
