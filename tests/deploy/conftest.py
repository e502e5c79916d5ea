"""promtool for the checks of deploy/prometheus: missing is a failure, never a skip."""

from __future__ import annotations

import pytest

from tests.support.promtool import find_promtool
from tests.support.servers import ServerUnavailableError


@pytest.fixture(scope="session")
def promtool() -> str:
    try:
        return find_promtool()
    except ServerUnavailableError as error:
        pytest.fail(f"promtool is needed to check deploy/prometheus: {error}")
