"""GroupRegister: batching and per-item outcomes of concurrent submissions (pure logic)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from onerecord.source.group_register import GroupRegister

pytestmark = pytest.mark.anyio


class Refused(Exception):
    pass


class Recorder:
    """A commit that answers each item: "ok:<item>", or Refused for items starting with "bad"."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def commit(self, items: Sequence[str]) -> list[str | Exception]:
        self.batches.append(list(items))
        await self.gate.wait()
        return [Refused(i) if i.startswith("bad") else f"ok:{i}" for i in items]


async def test_a_caller_alone_commits_at_once() -> None:
    rec = Recorder()
    group: GroupRegister[str, str] = GroupRegister(rec.commit)
    assert await group.submit("a") == "ok:a"
    assert rec.batches == [["a"]]


async def test_concurrent_items_share_a_batch_and_each_gets_its_own_outcome() -> None:
    rec = Recorder()
    group: GroupRegister[str, str] = GroupRegister(rec.commit)
    items = ["a", "b", "bad-c", "d"]
    outcomes = await asyncio.gather(*(group.submit(i) for i in items), return_exceptions=True)
    assert rec.batches == [items]
    assert outcomes[:2] == ["ok:a", "ok:b"]
    assert isinstance(outcomes[2], Refused)
    assert outcomes[3] == "ok:d"


async def test_items_queued_during_a_commit_go_in_the_next_batch_in_order() -> None:
    rec = Recorder()
    rec.gate.clear()
    group: GroupRegister[str, str] = GroupRegister(rec.commit)
    first = asyncio.ensure_future(group.submit("a"))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(group.submit(i)) for i in ("b", "c")]
    await asyncio.sleep(0.01)
    assert rec.batches == [["a"]]
    rec.gate.set()
    assert await first == "ok:a"
    assert [await f for f in later] == ["ok:b", "ok:c"]
    assert rec.batches == [["a"], ["b", "c"]]


async def test_max_documents_bounds_a_batch_by_size() -> None:
    rec = Recorder()
    group: GroupRegister[str, str] = GroupRegister(rec.commit, max_documents=5)
    await asyncio.gather(*(group.submit(i, size=2) for i in "abcde"))
    assert rec.batches == [["a", "b"], ["c", "d"], ["e"]]


async def test_a_failed_commit_fails_every_caller_of_its_batch_only() -> None:
    calls = 0

    async def commit(items: Sequence[str]) -> list[str | Exception]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database went away")
        return [f"ok:{i}" for i in items]

    group: GroupRegister[str, str] = GroupRegister(commit)
    outcomes = await asyncio.gather(group.submit("a"), group.submit("b"), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert await group.submit("c") == "ok:c"


async def test_a_commit_that_answers_for_another_batch_fails_its_callers() -> None:
    async def commit(items: Sequence[str]) -> list[str | Exception]:
        return ["only one"]

    group: GroupRegister[str, str] = GroupRegister(commit)
    outcomes = await asyncio.gather(group.submit("a"), group.submit("b"), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)


async def test_a_cancelled_caller_still_queued_withdraws_its_item() -> None:
    rec = Recorder()
    rec.gate.clear()
    group: GroupRegister[str, str] = GroupRegister(rec.commit)
    first = asyncio.ensure_future(group.submit("a"))
    await asyncio.sleep(0.01)
    withdrawn = asyncio.ensure_future(group.submit("b"))
    kept = asyncio.ensure_future(group.submit("c"))
    await asyncio.sleep(0.01)
    withdrawn.cancel()
    rec.gate.set()
    await first
    assert await kept == "ok:c"
    await group.wait_idle()
    assert rec.batches == [["a"], ["c"]]


def test_max_documents_must_be_positive() -> None:
    async def commit(items: Sequence[str]) -> list[str | Exception]:
        return list(items)

    with pytest.raises(ValueError):
        GroupRegister(commit, max_documents=0)
