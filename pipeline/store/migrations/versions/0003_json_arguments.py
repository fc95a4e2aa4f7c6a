"""A job's keyword arguments, and its arguments and result kept as JSON text.

Adds ``jobs.kwargs``. Rows written before kept ``args`` and ``result`` as
Python ``repr`` text: each one that reads as a Python literal is rewritten as
the JSON of that literal; the others are kept as they are (readers show text
that is not JSON as a string).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JOBS = sa.table("jobs", sa.column("id", sa.String), sa.column("args", sa.Text),
                 sa.column("result", sa.Text))


def as_json(text: str | None) -> str | None:
    """*text* unchanged when it is JSON, else the JSON of the Python literal it spells."""
    if text is None:
        return None
    try:
        json.loads(text)
        return text
    except ValueError:
        pass
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    if isinstance(value, tuple):
        value = list(value)
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        return text


def upgrade() -> None:
    """Add ``jobs.kwargs``; rewrite ``args`` and ``result`` written as ``repr`` as JSON."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("kwargs", sa.Text(), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.select(_JOBS.c.id, _JOBS.c.args, _JOBS.c.result)).all()
    for job_id, args, result in rows:
        new_args, new_result = as_json(args), as_json(result)
        if (new_args, new_result) != (args, result):
            bind.execute(_JOBS.update().where(_JOBS.c.id == job_id)
                         .values(args=new_args, result=new_result))


def downgrade() -> None:
    """Drop ``jobs.kwargs`` (the JSON text of ``args`` and ``result`` stays)."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("kwargs")
