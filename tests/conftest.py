"""Fixtures shared by the whole suite. Helpers owned by one area live next to its tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from service.logs import HELD_LOGGERS
from tests.redis_servers import (
    RedisClusterServers,
    RedisServer,
    start_cluster,
    start_server,
)


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """For tests that call `configure_logging`: it changes process-wide state (root
    handlers and level, the caller lookup, library loggers), put back afterwards."""
    root = logging.getLogger()
    handlers, level, srcfile = root.handlers[:], root.level, logging._srcfile
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging._srcfile = srcfile
        logging.getLogger("uvicorn.access").disabled = False
        for name in HELD_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)


# Real servers shared by the whole session (flushed before each test that uses them).


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def clean_redis(redis_server: RedisServer) -> RedisServer:
    with redis_server.client() as c:
        c.flushall()
        c.execute_command("SCRIPT", "FLUSH")
    return redis_server


@pytest.fixture
def clean_cluster(redis_cluster: RedisClusterServers) -> RedisClusterServers:
    redis_cluster.flush()
    return redis_cluster
