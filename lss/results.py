"""The results contract: ``metrics.json``, ``REPORT.md`` and figures.

Every number a notebook reports goes through :func:`record`, which merges it into
``<figures_dir>/metrics.json`` under a stable ``section`` / ``key`` with its unit, the paper's value,
a reference value (e.g. the exact answer), a target and how it was measured. :func:`write_report`
renders all of it as ``REPORT.md``. Figures are saved with :func:`savefig`, which stamps each one
with the notebook that made it.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from . import paths


def _metrics_path(profile: str) -> Path:
    return paths.figures_dir(profile) / "metrics.json"


def load_metrics(profile: str) -> dict:
    p = _metrics_path(profile)
    if p.exists():
        return json.loads(p.read_text())
    return {}


def _clean(v: Any) -> Any:
    """Convert numpy scalars/arrays to plain JSON types."""
    try:
        import numpy as np

        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def record(profile: str, section: str, key: str, value: Any, unit: str, *, how: str,
           paper: Any = None, reference: Any = None, target: str | None = None,
           met: bool | None = None, notebook: str | None = None) -> dict:
    """Merge one measured number into ``metrics.json`` and return its entry.

    Parameters
    ----------
    profile : str
        Run profile (``smoke``, ``cpu``, ``paper``); decides where ``metrics.json`` lives.
    section, key : str
        Stable location, e.g. ``("four_well", "tv_lss")``.
    value : number, list or str
        What this run measured.
    unit : str
        Unit of ``value`` (``"kT"``, ``"nm"``, ``"steps"``, ``"1"`` for dimensionless).
    how : str
        One sentence: how it was measured.
    paper, reference : optional
        The paper's value; an independent reference (exact or converged) where one exists.
    target : str, optional
        The acceptance target in words, e.g. ``"<= 0.02"``.
    met : bool, optional
        Whether the target was met (computed by the caller, never assumed).
    """
    metrics = load_metrics(profile)
    entry = {"value": _clean(value), "unit": unit, "how": how}
    for name, v in (("paper", paper), ("reference", reference), ("target", target),
                    ("met", met), ("notebook", notebook)):
        if v is not None:
            entry[name] = _clean(v)
    metrics.setdefault(section, {})[key] = entry
    metrics.setdefault("_meta", {})["updated"] = _dt.datetime.now().isoformat(timespec="seconds")
    _metrics_path(profile).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return entry


def record_meta(profile: str, **items: Any) -> None:
    """Store run-level facts (hardware, durations) under ``_meta``."""
    metrics = load_metrics(profile)
    metrics.setdefault("_meta", {}).update(_clean(items))
    _metrics_path(profile).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, bool):
        return "yes" if v else "**NO**"
    return str(v)


def write_report(profile: str) -> Path:
    """Render ``metrics.json`` as ``REPORT.md`` (one table per section) and return its path."""
    metrics = load_metrics(profile)
    meta = metrics.get("_meta", {})
    lines = [f"# Reproduction report ({profile} profile)", "",
             "Generated from `metrics.json` by `lss.results.write_report`; every value below was "
             "computed by this run. `met` is blank where no target applies.", ""]
    if meta:
        lines += ["## Run", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in sorted(meta.items())]
        lines.append("")
    for section in sorted(k for k in metrics if not k.startswith("_")):
        lines += [f"## {section}", "",
                  "| quantity | paper | this run | reference | unit | target | met | how measured |",
                  "|---|---|---|---|---|---|---|---|"]
        for key, e in metrics[section].items():
            lines.append("| " + " | ".join([
                key, _fmt(e.get("paper")), _fmt(e.get("value")), _fmt(e.get("reference")),
                e.get("unit", ""), _fmt(e.get("target")), _fmt(e.get("met")),
                (e.get("how", "") + (f" ({e['notebook']})" if e.get("notebook") else "")).replace("|", "\\|"),
            ]) + " |")
        lines.append("")
    out = paths.figures_dir(profile) / "REPORT.md"
    out.write_text("\n".join(lines))
    return out


def savefig(fig, name: str, profile: str, notebook: str, dpi: int = 130) -> Path:
    """Save ``fig`` as ``<figures_dir>/<name>.png``, stamped with the notebook and profile that made it."""
    fig.text(0.995, 0.005, f"lss · notebooks/{notebook}.ipynb · profile {profile}",
             ha="right", va="bottom", fontsize=6, color="0.5")
    out = paths.figures_dir(profile) / f"{name}.png"
    fig.savefig(out, dpi=dpi, bbox_inches="tight",
                metadata={"Software": f"lss notebooks/{notebook}.ipynb", "Comment": f"profile={profile}"})
    return out
