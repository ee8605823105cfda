"""The outbox tests deliver with a test handler to an HTTP far side (tests.outbox.far_side)."""

from __future__ import annotations

import pytest

from hub.outbox import register_handler
from tests.outbox.far_side import post_to_far_side


@pytest.fixture(autouse=True)
def _far_side_handler() -> None:
    register_handler(post_to_far_side)
