"""Benchmark the pure DICOMweb wire: what one request costs before any I/O.

- STOW-RS body parsing: `--instances` parts of `--part-kb` KB each (≈ 0.5 MB CT slices), fed to
  `MultipartParser` in 64 KB chunks as an ASGI server would hand them over; MB/s.
- Metadata for the database: `metadata_json` + orjson of a CT-like instance (≈ 60 attributes, a
  sequence, 0.5 MB pixel data as a BulkDataURI); µs per instance.
- Reading it back: `parse_dicom_json` of one stored metadata object (its BulkDataURI resolved
  to nothing); µs per instance.
- QIDO-RS: `parse_qido_query` of `PatientID=…&StudyDate=…-…&includefield=…&limit=…`; µs per call.
- WADO-RS: `negotiate` of dicomweb-client's frame Accept header; µs per call.

Each figure is the median of `--rounds` rounds. Prints the figures and writes
bench/results/dicom_wire.json.
Usage: .venv/bin/python bench/dicom_wire.py [--instances 10] [--part-kb 512] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from onerecord.dicom import (  # noqa: E402
    MultipartParser,
    OutgoingPart,
    QidoLevel,
    WadoResource,
    metadata_json,
    negotiate,
    new_boundary,
    offers_for,
    parse_dicom_json,
    parse_qido_query,
    render_multipart,
)


def _ct_slice(part_kb: int) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20261203", "081500", "A123456"
    ds.Modality, ds.Manufacturer, ds.InstitutionName = "CT", "Synthetic", "Helse Nord"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = (
        "Nordmann^Kari",
        "01817912345",
        "19790101",
        "F",
    )
    ds.StudyDescription, ds.SeriesDescription = "CT thorax", "Axial 1 mm"
    ds.SeriesNumber, ds.InstanceNumber = "3", "42"
    ds.ImagePositionPatient = ["-250.0", "-250.0", "-42.5"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SliceThickness, ds.SliceLocation = "1.0", "-42.5"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 512
    ds.PixelSpacing = ["0.7", "0.7"]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
    ds.WindowCenter, ds.WindowWidth = ["40", "-600"], ["400", "1500"]
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    ds.KVP, ds.XRayTubeCurrent, ds.ExposureTime = "120", 200, 500
    ds.ConvolutionKernel = "B30f"
    ds.add_new(0x00090010, "LO", "ONERECORD BENCH")
    for i in range(10):
        ds.add_new(0x00091000 + i, "LO", f"private {i}")
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D3000", "SRT", "Chest"
    ds.AnatomicRegionSequence = Sequence([item])
    ds.add_new(0x7FE00010, "OW", bytes(part_kb * 1024))
    return ds


def _median_of(rounds: int, run: Callable[[], float]) -> float:
    return statistics.median(run() for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--part-kb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    boundary = new_boundary()
    part = bytes(args.part_kb * 1024)
    body = b"".join(
        render_multipart([OutgoingPart("application/dicom", part)] * args.instances, boundary)
    )
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]

    def stow_parse() -> float:
        start = time.perf_counter()
        p = MultipartParser(boundary)
        n = sum(len(p.feed(c)) for c in chunks)
        p.close()
        assert n == args.instances
        return time.perf_counter() - start

    parse_s = _median_of(args.rounds, stow_parse)
    ds = _ct_slice(args.part_kb)
    n = 2000

    def metadata() -> float:
        start = time.perf_counter()
        for _ in range(n):
            orjson.dumps(metadata_json(ds, bulkdata_uri=lambda p: "bulk/7FE00010"))
        return (time.perf_counter() - start) / n

    stored = orjson.dumps([metadata_json(ds, bulkdata_uri=lambda p: "bulk/7FE00010")])

    def read_back() -> float:
        start = time.perf_counter()
        for _ in range(n):
            parse_dicom_json(stored, bulkdata=lambda uri: b"")
        return (time.perf_counter() - start) / n

    query = [
        ("PatientID", "01817912345"),
        ("StudyDate", "20260101-20261231"),
        ("ModalitiesInStudy", "CT,MR"),
        ("includefield", "StudyDescription"),
        ("limit", "50"),
    ]

    def qido() -> float:
        start = time.perf_counter()
        for _ in range(n):
            parse_qido_query(query, level=QidoLevel.STUDY)
        return (time.perf_counter() - start) / n

    offers = offers_for(WadoResource.FRAMES, stored_transfer_syntax="1.2.840.10008.1.2.4.50")
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'

    def wado() -> float:
        start = time.perf_counter()
        for _ in range(n):
            negotiate(offers, accept)
        return (time.perf_counter() - start) / n

    figures: dict[str, Any] = {
        "stow_body_mb": round(len(body) / 1e6, 2),
        "stow_parse_mb_per_s": round(len(body) / 1e6 / parse_s, 1),
        "stow_parse_ms": round(parse_s * 1e3, 2),
        "metadata_json_us_per_instance": round(_median_of(args.rounds, metadata) * 1e6, 1),
        "metadata_attributes": len(orjson.loads(stored)[0]),
        "parse_dicom_json_us_per_instance": round(_median_of(args.rounds, read_back) * 1e6, 1),
        "qido_parse_us": round(_median_of(args.rounds, qido) * 1e6, 1),
        "wado_negotiate_us": round(_median_of(args.rounds, wado) * 1e6, 1),
        "instances": args.instances,
        "part_kb": args.part_kb,
        "rounds": args.rounds,
    }
    for key, value in figures.items():
        print(f"{key:34} {value}")  # noqa: T201
    out = ROOT / "bench" / "results" / "dicom_wire.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
