from __future__ import annotations

import time
from pathlib import Path

import anyio
import httpx
import orjson
import pytest

from onerecord.mhd import parse_provide_bundle
from onerecord.synth.dataset import bundle_files, bundle_plan, write_dataset
from onerecord.synth.importer import RetryNotice, TargetUnavailable, import_dataset

from .conftest import REFERENCE_DATE


class FakeSource:
    """A stand-in for a regional source's ITI-65 endpoint: idempotent on uniqueId + hash."""

    def __init__(self, *, refuse_patient: str | None = None, flaky: int = 0) -> None:
        self.stored: dict[str, str] = {}
        self.refuse_patient = refuse_patient
        self.flaky = flaky  # answer 503 to this many requests first
        self.requests = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if b'"relatesTo"' not in request.content:
            # Slow down bundles without replacements, so a replacement posted alongside its
            # original would overtake it: the importer must not do that.
            await anyio.sleep(0.01)
        assert request.method == "POST"
        assert request.url.path == "/fhir"
        assert request.headers["content-type"] == "application/fhir+json"
        if self.flaky:
            self.flaky -= 1
            return httpx.Response(503, text="busy")
        bundle = parse_provide_bundle(request.content)
        if bundle.submission_set.patient_id.value == self.refuse_patient:
            return _outcome(422, "patient is not known in this region")
        for doc in bundle.documents:
            known = self.stored.get(doc.entry.unique_id.value)
            if known is not None and known != doc.entry.hash_sha256:
                return _outcome(409, f"uniqueId {doc.entry.unique_id} has other content")
        for doc in bundle.documents:
            replaced = doc.entry.replaces
            if replaced is not None and replaced.value not in self.stored:
                return _outcome(422, f"replaced document {replaced} is not registered here")
        for doc in bundle.documents:
            self.stored[doc.entry.unique_id.value] = doc.entry.hash_sha256
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response"})


def _outcome(status: int, text: str) -> httpx.Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }
    return httpx.Response(status, json=body)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("import")
    write_dataset(out, seed=9, citizens=6, reference_date=REFERENCE_DATE, batch_size=3)
    return out


def _expected(dataset: Path, slug: str) -> int:
    manifest = orjson.loads((dataset / "dataset.json").read_bytes())
    return int(manifest["regions"][slug]["documents"])


@pytest.mark.anyio
async def test_import_posts_every_bundle_and_reports_progress(dataset: Path) -> None:
    source = FakeSource()
    seen: list[int] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(source)) as client:
        summary = await import_dataset(
            dataset,
            region="midt",
            base_url="http://midt.test/",
            concurrency=3,
            client=client,
            progress=seen.append,
        )
    assert summary.rejected == []
    assert summary.documents == _expected(dataset, "midt") == len(source.stored) == sum(seen)
    assert summary.bundles == len(bundle_files(dataset, "midt")) == source.requests
    assert summary.seconds > 0


@pytest.mark.anyio
async def test_rerun_is_idempotent(dataset: Path) -> None:
    source = FakeSource()
    async with httpx.AsyncClient(transport=httpx.MockTransport(source)) as client:
        first = await import_dataset(
            dataset, region="nord", base_url="http://n/fhir", client=client
        )
        stored = dict(source.stored)
        second = await import_dataset(dataset, region="nord", base_url="http://n", client=client)
    assert first.rejected == second.rejected == []
    assert first.documents == second.documents
    assert source.stored == stored


@pytest.mark.anyio
async def test_refusals_are_reported_with_their_diagnostics(dataset: Path) -> None:
    first_bundle = orjson.loads(bundle_files(dataset, "hso")[0].read_bytes())
    subject = next(
        e["resource"]["subject"]["identifier"]["value"]
        for e in first_bundle["entry"]
        if e["resource"]["resourceType"] == "List"
    )
    source = FakeSource(refuse_patient=subject)
    async with httpx.AsyncClient(transport=httpx.MockTransport(source)) as client:
        summary = await import_dataset(dataset, region="hso", base_url="http://h", client=client)
    assert summary.rejected
    assert summary.rejected[0].bundle == "00001.json"
    assert all(r.status == 422 for r in summary.rejected)
    assert all(r.reason == "patient is not known in this region" for r in summary.rejected)
    assert summary.documents + sum(1 for _ in summary.rejected) > 0
    assert summary.documents < _expected(dataset, "hso")


@pytest.mark.anyio
async def test_busy_answers_are_retried(dataset: Path) -> None:
    source = FakeSource(flaky=2)
    async with httpx.AsyncClient(transport=httpx.MockTransport(source)) as client:
        summary = await import_dataset(
            dataset, region="vest", base_url="http://v", client=client, retry_delay=0.001
        )
    assert summary.rejected == []
    assert summary.documents == _expected(dataset, "vest")


@pytest.mark.anyio
async def test_unreachable_source_is_retried_visibly_then_given_up_on(dataset: Path) -> None:
    """Issue 10 E: a dead source used to be retried bundle after bundle, silently, for minutes."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    notices: list[RetryNotice] = []
    started = time.monotonic()
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(TargetUnavailable) as caught:
            await import_dataset(
                dataset,
                region="vest",
                base_url="http://v",
                client=client,
                on_retry=notices.append,
                give_up_after=0.5,
                retry_delay=0.05,
                max_retry_delay=0.1,
            )
    assert time.monotonic() - started < 5
    assert caught.value.url == "http://v/fhir"
    assert caught.value.cause == "ConnectError: connection refused"
    assert str(caught.value).startswith("gave up on http://v/fhir after ")
    assert notices and notices[0].attempt == 2 and notices[0].delay == 0.05
    assert max(n.delay for n in notices) == 0.1  # the back-off grows up to its cap
    assert "(attempt 2, next in 0.1 s)" in str(notices[0])


@pytest.mark.anyio
async def test_refusals_keep_the_import_going_past_the_give_up_bound(dataset: Path) -> None:
    """An answer, even a refusal, shows the source alive: only silence counts toward giving up."""
    first_bundle = orjson.loads(bundle_files(dataset, "hso")[0].read_bytes())
    subject = next(
        e["resource"]["subject"]["identifier"]["value"]
        for e in first_bundle["entry"]
        if e["resource"]["resourceType"] == "List"
    )

    async def slow_refusing(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.05)
        return await FakeSource(refuse_patient=subject)(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(slow_refusing)) as client:
        summary = await import_dataset(
            dataset, region="hso", base_url="http://h", client=client, give_up_after=0.2
        )
    assert summary.rejected and summary.seconds > 2 * 0.2, summary.seconds


def test_bundle_plan_groups_a_patients_bundles_in_order(dataset: Path, tmp_path: Path) -> None:
    groups = bundle_plan(dataset, "hso")
    refs = [ref for group in groups for ref in group]
    assert [r.path for r in refs] == bundle_files(dataset, "hso")
    patients = [group[0].patient for group in groups]
    assert len(patients) == len(set(patients))
    assert all(len({r.patient for r in group}) == 1 for group in groups)
    assert any(len(group) > 1 for group in groups)
    # Without index.json the plan is read from the bundles and comes out the same.
    copy = tmp_path / "copy"
    (copy / "hso" / "bundles").mkdir(parents=True)
    for ref in refs:
        (copy / "hso" / "bundles" / ref.path.name).write_bytes(ref.path.read_bytes())
    again = bundle_plan(copy, "hso")
    assert [[(r.path.name, r.patient, r.documents) for r in g] for g in again] == [
        [(r.path.name, r.patient, r.documents) for r in g] for g in groups
    ]
