"""`make gpu-report` in its CPU dry run: the report GPU CI writes, in the same format."""

import json
import subprocess
import sys

import pytest

from course_lib.environment import onednn_enabled


@pytest.mark.cpu_sensitive
@pytest.mark.slow  # benchmarks four precisions and two batch sizes
def test_dry_run_writes_the_report_in_json_and_markdown(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "course_lib.dev.gpu_report", "--dry-run", "--skip-notebooks", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["dry_run"] is True and report["device"]["tensorflow"].startswith("2.21")
    precisions = {row["precision"] for row in report["throughput"]}
    assert precisions == {"fp32", "fp32+xla", "mixed", "mixed+xla"}
    for row in report["throughput"]:
        assert row["images_per_s"] > 0 and row["p95_ms"] >= row["p50_ms"]
    assert [row["batch_size"] for row in report["memory"]] == [1, 8]
    assert all(row["estimate_mib"] > 0 for row in report["memory"])
    for row in report["memory"]:  # an eager call holds every layer output: never less than the compiled peak
        assert row["eager_estimate_mib"] >= row["estimate_mib"]
    # at batch 8 the tiny CNN's tensors pass the oneDNN CPU allocator's 256 KiB floor; without oneDNN
    # (AVX2-only CPUs) the process's resident memory is measured instead, and the row says so
    largest = report["memory"][-1]
    assert largest["method"] == ("allocator" if onednn_enabled() else "process-rss")
    assert largest["eager_measured_peak_mib"] >= largest["measured_peak_mib"] > 0
    assert report["device"]["onednn"] is onednn_enabled()
    assert isinstance(report["device"]["cpu_features"], list)
    formats = {row["format"]: row for row in report["tflite"]}
    assert set(formats) == {"keras", "tflite", "tflite-dynamic", "tflite-int8"}
    assert formats["tflite-int8"]["size_mib"] < formats["keras"]["size_mib"]
    assert 0 <= formats["tflite-int8"]["top1_agreement"] <= 1
    markdown = (tmp_path / "report.md").read_text()
    for heading in ("## Inference throughput", "## Memory: estimate vs measured peak", "## TFLite", "## Notebooks"):
        assert heading in markdown
    assert "NVIDIA driver:" in markdown and "dry run" in markdown and "oneDNN o" in markdown
