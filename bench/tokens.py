"""The broker's time to authenticate an HS256 bearer token (µs per token), printed.

`Authenticator.authenticate` on tokens of distinct users, each new to it (so every
signature is checked and every claim read), then on one token it has just verified,
again and again (its verified-token cache). No network: an HS256 tenant needs none. Run:
`python bench/tokens.py [--tokens N] [--rounds R]`; the budget is 500 µs a token (it was
an assertion of the unit suite, far above what is measured: the suite now only checks
that the tokens authenticate, tests/auth/test_tokens.py).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from service.auth.tokens import Authenticator, Identity, sign_dev_token
from service.config.settings import TenantSettings, load_settings

SECRET = "bench-tokens-secret-" + "x" * 32
BUDGET_MICROS = 500.0


def tenant() -> TenantSettings:
    return load_settings({"BROKER_UPSTREAM": "fake", "BROKER_JWT_SECRET": SECRET}).tenants[0]


def tokens(count: int, *, now: float) -> list[str]:
    """`count` tokens, each of its own user (`user-0`, `user-1`, ...)."""
    return [sign_dev_token(SECRET, sub=f"user-{i}", role="reader", now=now) for i in range(count)]


async def authenticate_all(auth: Authenticator, batch: list[str]) -> list[Identity]:
    return [await auth.authenticate([f"Bearer {token}"]) for token in batch]


async def measure(count: int, rounds: int) -> dict[str, list[float]]:
    """µs per token in each round: `verified` (a fresh authenticator, every token new to
    it) and `cached` (one token it verified, `count` times)."""
    figures: dict[str, list[float]] = {"verified": [], "cached": []}
    batches = {"verified": tokens(count, now=time.time())}
    batches["cached"] = batches["verified"][-1:] * count
    async with httpx.AsyncClient() as http:
        for _ in range(rounds):
            auth = Authenticator([tenant()], http=http, clock=time.time)
            for kind, batch in batches.items():
                started = time.perf_counter()
                await authenticate_all(auth, batch)
                figures[kind].append((time.perf_counter() - started) / count * 1e6)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.tokens, args.rounds))
    print(f"HS256 authentication, {args.tokens} tokens x {args.rounds} rounds")
    for kind, micros in figures.items():
        print(
            f"  {kind:9s} median {statistics.median(micros):.1f} µs/token   "
            f"best {min(micros):.1f}   worst {max(micros):.1f}"
        )
    worst = max(figures["verified"])
    print(f"budget: < {BUDGET_MICROS:.0f} µs/token:", "ok" if worst < BUDGET_MICROS else "OVER")


if __name__ == "__main__":
    main()
