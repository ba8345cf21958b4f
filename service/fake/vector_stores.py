"""Vector stores kept in memory by the fake upstream, with OpenAI's cursor pagination.

Lists are ordered by `created_at` then `id`, ascending or descending. `after=X` returns the
page that follows X in that order; `before=X` returns the page that immediately precedes X
(still in list order); `has_more` says whether more objects lie beyond the page in the
direction of travel. Ids are `vs_` plus hex whose first digits count up, so that stores
created within the same second still list in creation order.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from service.fake.validate import Refusal

DAY = 86_400


class VectorStores:
    """One fake account's vector stores; one instance per fake app."""

    def __init__(self) -> None:
        self._stores: dict[str, dict[str, Any]] = {}

    def create(self, body: Mapping[str, Any], now: float) -> dict[str, Any]:
        created_at = int(now)
        store_id = f"vs_{len(self._stores):08x}{secrets.token_hex(8)}"
        file_count = len(body.get("file_ids") or [])
        expires_after = body.get("expires_after")
        store: dict[str, Any] = {
            "id": store_id,
            "object": "vector_store",
            "created_at": created_at,
            "name": body.get("name", ""),
            "usage_bytes": 0,
            # The fake has no files to process: everything is ready at once.
            "file_counts": {
                "in_progress": 0,
                "completed": file_count,
                "failed": 0,
                "cancelled": 0,
                "total": file_count,
            },
            "status": "completed",
            "expires_at": created_at + expires_after["days"] * DAY if expires_after else None,
            "last_active_at": created_at,
            "metadata": body.get("metadata") or {},
        }
        if expires_after:
            store["expires_after"] = dict(expires_after)
        if "description" in body:
            store["description"] = body["description"]
        self._stores[store_id] = store
        return store

    def page(
        self,
        *,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> dict[str, Any]:
        ordered = sorted(
            self._stores.values(),
            key=lambda s: (s["created_at"], s["id"]),
            reverse=order == "desc",
        )
        ids = [store["id"] for store in ordered]
        start = self._position(ids, after, "after") + 1 if after else 0
        end = self._position(ids, before, "before") if before else len(ordered)
        window = ordered[start:end]
        # Travelling backwards, the page is the one touching the cursor.
        page = window[-limit:] if before and not after else window[:limit]
        return {
            "object": "list",
            "data": page,
            # OpenAI sends null ids for an empty page (the reference spec says string).
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(window) > limit,
        }

    @staticmethod
    def _position(ids: list[str], cursor: str, param: str) -> int:
        try:
            return ids.index(cursor)
        except ValueError:
            raise Refusal(
                400,
                f"Invalid '{param}': no vector store with id {cursor!r}.",
                param=param,
                code="invalid_value",
            ) from None
