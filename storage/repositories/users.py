"""Users."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import models


async def user_by_username(session: AsyncSession, username: str) -> models.User | None:
    return await session.scalar(select(models.User).where(models.User.username == username))


async def user_by_id(session: AsyncSession, user_id: int) -> models.User | None:
    return await session.get(models.User, user_id)
