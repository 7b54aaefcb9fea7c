"""metrics.json / REPORT.md: values are recorded with units and rendered."""
import json

import numpy as np

from lss import results


def test_record_merges_and_report_renders(tmp_path, monkeypatch):
    monkeypatch.setenv("LSS_ROOT", str(tmp_path))
    results.record("smoke", "four_well", "tv_lss", np.float32(0.0125), "1", how="histogram TV",
                   target="<= 0.02", met=True, paper=None)
    results.record("smoke", "four_well", "timescales", np.array([1.0, 2.0]), "steps", how="MSM")
    results.record("smoke", "trpcage", "rg", 0.87, "nm", how="mdtraj", paper=0.87, met=False, target="within 0.03")
    m = json.loads((tmp_path / "runs/smoke/figures/metrics.json").read_text())
    assert m["four_well"]["tv_lss"]["value"] == float(np.float32(0.0125))
    assert m["four_well"]["timescales"] == {"value": [1.0, 2.0], "unit": "steps", "how": "MSM"}
    assert m["trpcage"]["rg"]["met"] is False
    report = results.write_report("smoke").read_text()
    assert "| tv_lss |  | 0.0125 |  | 1 | <= 0.02 | yes |" in report
    assert "**NO**" in report and "## trpcage" in report
