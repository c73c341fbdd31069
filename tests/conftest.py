import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Each test starts with structlog's defaults, whatever an earlier CLI test configured."""
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
