"""metrics.json / REPORT.md: values are recorded with units and rendered."""
import json

import numpy as np
import pytest

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
    assert "| tv_lss |  | 0.0125 |  |  |  | 1 | <= 0.02 | yes |" in report
    assert "**NO**" in report and "## trpcage" in report


def test_targets_are_assessed_per_profile_and_smoke_is_not_held_to_them():
    t = results.Target("max", 0.10, per_profile={"class": 0.15}, text="each within {} of exact")
    assert t.assess([0.02, 0.12], "cpu") == ("each within 0.1 of exact", False)
    assert t.assess([0.02, 0.12], "class") == ("each within 0.15 of exact (class profile)", True)
    text, met = t.assess([0.5], "smoke")
    assert met is None and "not assessed" in text
    assert results.Target("range", (0.3, 0.7)).assess(0.46, "paper") == ("0.3-0.7", True)
    assert results.Target("min", 30, per_profile={"smoke": 3}).assess(4, "smoke")[1] is True
    assert results.Target("max", 1.0).assess(float("nan"), "cpu")[1] is False   # a NaN never meets a target


def test_a_relative_target_scales_with_the_equal_length_floor(tmp_path, monkeypatch):
    t = results.Target("rel", 1.5)
    assert t.assess(0.29, "cpu", floor=0.2) == ("<= 1.5 x the equal-length floor (0.2) = 0.3", True)
    assert t.assess(0.31, "cpu", floor=0.2)[1] is False
    assert t.assess(0.31, "cpu", floor=1.0)[1] is True          # the same error against a looser floor
    assert t.assess(0.1, "cpu")[1] is None                      # no floor: not assessed, never assumed met
    assert t.assess(float("inf"), "cpu", floor=0.2)[1] is False  # an unresolved quantity misses
    monkeypatch.setenv("LSS_ROOT", str(tmp_path))
    rec = results.Recorder("cpu", "trpcage", "07_analysis")
    rec("error_fq_lss", 0.25, "kT", "aligned RMSE", training_md=0.3, floor=0.2)
    report = results.write_report("cpu").read_text()
    assert "| error_fq_lss |  | 0.25 |  | 0.3 | 0.2 | kT | <= 1.5 x the equal-length floor (0.2) = 0.3 | yes |" in report


def test_recorder_fills_declared_targets_and_explicit_ones_win(tmp_path, monkeypatch):
    monkeypatch.setenv("LSS_ROOT", str(tmp_path))
    rec = results.Recorder("class", "four_well", "01_four_well")
    rec("tv_lss", 0.03, "1", "histogram TV")                                  # declared: class bound 0.04
    rec("timescales_lss_rel_error", np.array([0.01, 0.2, 0.05]), "1", "per timescale")
    rec("custom", 5.0, "s", "a run-dependent target", target="<= 10 s", met=True)
    rec("untargeted", 1.0, "1", "no target")
    m = json.loads((tmp_path / "runs/class/figures/metrics.json").read_text())["four_well"]
    assert m["tv_lss"]["met"] is True and m["tv_lss"]["target"] == "<= 0.04 (class profile)"
    assert m["tv_lss"]["notebook"] == "01_four_well"
    assert m["timescales_lss_rel_error"]["met"] is False            # 0.2 > 0.15
    assert m["custom"]["target"] == "<= 10 s" and "target" not in m["untargeted"]
    v = rec.verdict()
    assert v.startswith("four_well: targets NOT met: timescales_lss_rel_error") and "met: tv_lss, custom" in v


def test_every_declared_target_is_well_formed():
    for (section, key), t in results.TARGETS.items():
        for profile in ("smoke", "class", "cpu", "paper"):
            text, _ = t.assess(t.bound if t.kind != "range" else t.bound[0], profile, floor=1.0)
            assert text and "{}" not in text, (section, key, profile)


def test_the_metric_catalog_is_well_formed():
    """Every catalogued number has a unit and a one-sentence description; every (section, key) of TARGETS that
    a notebook records through the catalog is in it with a string description."""
    cat = results.catalog()
    assert cat, "lss/resources/metrics.yaml is empty"
    for section, entries in cat.items():
        for key, e in entries.items():
            assert set(e) <= {"unit", "how", "paper"}, (section, key, sorted(e))
            assert isinstance(e.get("how"), str) and e["how"].strip(), (section, key)
            assert isinstance(e.get("unit", "1"), str), (section, key)


def test_a_description_writes_n_a_for_a_missing_key_and_refuses_a_missing_variable(monkeypatch):
    from lss import results

    monkeypatch.setattr(results, "_CATALOG", {"s": {"a": {"unit": "nm", "how": "{n} jobs, {sim[cpu_count]} cores, {ft:g}"},
                                                    "rg_{k}": {"how": "Rg of {k}"}, "b": {"how": "{typo}"}}})
    rec = results.Recorder("x", "s", "nb", context={"n": 2, "sim": {"n_jobs": 2}, "ft": 0.5})
    assert rec._described("a", None, None, {})[:2] == ("nm", "2 jobs, n/a cores, 0.5")
    assert rec._described("rg_lss", None, None, {})[1] == "Rg of lss"
    with pytest.raises(KeyError, match="typo"):
        rec._described("b", None, None, {})
