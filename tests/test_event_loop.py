"""The event loop `hivebus up` runs on: uvloop when installed, asyncio otherwise, by choice."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest
from hivebus import event_loop

UVLOOP = importlib.util.find_spec("uvloop") is not None


def test_auto_takes_uvloop_exactly_when_it_is_installed(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(event_loop.ENV, raising=False)
    assert event_loop.chosen() == ("uvloop" if UVLOOP else "asyncio")
    assert event_loop.chosen("auto") == event_loop.chosen()


def test_a_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(event_loop.ENV, "uvloop")
    assert event_loop.chosen("asyncio") == "asyncio"
    monkeypatch.setenv(event_loop.ENV, " AsyncIO ")
    assert event_loop.chosen() == "asyncio"


def test_uvloop_by_name_where_it_is_not_installed_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
):
    # As on Windows or PyPy, where the dependency is not installed.
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else found(name, *a)
    )
    monkeypatch.delenv(event_loop.ENV, raising=False)
    assert event_loop.chosen() == "asyncio"
    with pytest.raises(event_loop.EventLoopUnavailable, match=r"pip install uvloop"):
        event_loop.chosen("uvloop")


def test_run_runs_the_coroutine_on_the_chosen_loop():
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert event_loop.run(loop_module(), "asyncio").startswith("asyncio")
    if UVLOOP:
        assert event_loop.run(loop_module(), "uvloop").startswith("uvloop")
