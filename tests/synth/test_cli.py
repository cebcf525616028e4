from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from onerecord.synth import cli
from onerecord.synth.dataset import load_population
from onerecord.synth.importer import ImportSummary, Rejection


def test_generate_writes_a_dataset(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = CliRunner().invoke(
        cli.synth_app,
        [
            "generate",
            "--out",
            str(out),
            "--seed",
            "2",
            "--citizens",
            "4",
            "--reference-date",
            "2025-06-01",
            "--batch-size",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "total" in result.output
    population = load_population(out)
    assert population.reference_date.isoformat() == "2025-06-01"
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset.json",
        "hso",
        "midt",
        "nord",
        "population.json",
        "vest",
    ]


@pytest.mark.parametrize(
    ("rejected", "code"),
    [([], 0), ([Rejection("00003.json", 422, "subject does not match")], 1)],
)
def test_run_import_exit_code_and_summary(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    rejected: list[Rejection],
    code: int,
) -> None:
    calls: list[dict[str, object]] = []

    async def fake_import(dataset: Path, **kwargs: object) -> ImportSummary:
        calls.append({"dataset": dataset, **kwargs})
        progress = kwargs["progress"]
        assert callable(progress)
        progress(7)
        return ImportSummary(documents=7, bundles=2, seconds=0.5, rejected=rejected)

    monkeypatch.setattr(cli, "import_dataset", fake_import)
    assert cli.run_import(tmp_path, "vest", "http://127.0.0.1:9", 2) == code
    assert calls[0]["region"] == "vest" and calls[0]["concurrency"] == 2
    output = capsys.readouterr().out
    assert "7 documents in 2 bundles" in output
    assert ("subject does not match" in output) == bool(rejected)
