"""Script loading and reply decoding for the Redis store (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.limits import Limit, Outcome
from service.stores.base import UserRecord
from service.stores.redis_client import LuaScript, load_script


@dataclass(frozen=True, slots=True)
class Scripts:
    admit: LuaScript
    consume: LuaScript
    refund: LuaScript
    update_user: LuaScript

    @classmethod
    def load(cls) -> Scripts:
        return cls(
            admit=load_script("admit"),
            consume=load_script("consume"),
            refund=load_script("refund"),
            update_user=load_script("update_user", with_gcra=False),
        )


def bucket_args(limits: Sequence[Limit]) -> list[str]:
    args: list[str] = []
    for limit in limits:
        args += [repr(limit.period * 1e6), repr(limit.interval * 1e6)]
    return args


def outcomes(flat: Sequence[Any], limits: Sequence[Limit]) -> list[Outcome]:
    """Script outcomes (bucket number, allowed, remaining, reset, retry, tat) → Outcome."""
    # Six at a time from one iterator (no slices): this runs for every admission.
    six = [iter(flat)] * 6
    return [
        Outcome(
            limits[int(number) - 1],
            int(allowed) == 1,
            int(remaining),
            float(reset) / 1e6,
            float(retry) / 1e6,
            float(tat) / 1e6,
        )
        for number, allowed, remaining, reset, retry, tat in zip(*six, strict=True)
    ]


def record(tenant: str, fields: dict[str, str]) -> UserRecord | None:
    if not fields or "added_at" not in fields:
        return None
    return UserRecord(
        tenant=tenant,
        id=fields["id"],
        name=fields.get("name"),
        email=fields.get("email"),
        added_at=int(fields["added_at"]),
        role=fields.get("role") or None,
        claimed_role=fields.get("claimed") or None,
        revoked=fields.get("revoked") == "1",
    )


def pairs(flat: Sequence[str] | None) -> dict[str, str]:
    flat = flat or []
    return dict(zip(flat[::2], flat[1::2], strict=True))
