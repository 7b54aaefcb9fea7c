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
import os
import re
import string
from pathlib import Path
from typing import Any

from . import paths


def markdown_table(head, rows) -> str:
    """A markdown table from column names ``head`` and ``rows`` (lists of cells, formatted with ``str``)."""
    lines = ["| " + " | ".join(map(str, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def _metrics_path(profile: str) -> Path:
    return paths.figures_dir(profile) / "metrics.json"


def load_metrics(profile: str) -> dict:
    p = _metrics_path(profile)
    if p.exists():
        return json.loads(p.read_text())
    return {}


def _clean(v: Any) -> Any:
    """Convert numpy scalars/arrays to plain JSON types (:func:`lss.utils.jsonable`)."""
    from .utils import jsonable

    return jsonable(v)


def record(profile: str, section: str, key: str, value: Any, unit: str, *, how: str,
           paper: Any = None, reference: Any = None, target: str | None = None,
           met: bool | None = None, notebook: str | None = None, training_md: Any = None,
           floor: Any = None) -> dict:
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
    training_md, floor : optional
        For an error against the converged reference: the training MD's own error, and the
        equal-length floor (the mean error of independent MD of the training length).
    """
    metrics = load_metrics(profile)
    entry = {"value": _clean(value), "unit": unit, "how": how}
    for name, v in (("paper", paper), ("reference", reference), ("target", target),
                    ("met", met), ("notebook", notebook), ("training_md", training_md), ("floor", floor)):
        if v is not None:
            entry[name] = _clean(v)
    metrics.setdefault(section, {})[key] = entry
    metrics.setdefault("_meta", {})["updated"] = _dt.datetime.now().isoformat(timespec="seconds")
    _write_metrics(profile, metrics)
    return entry


def record_meta(profile: str, **items: Any) -> None:
    """Store run-level facts (hardware, durations) under ``_meta``."""
    metrics = load_metrics(profile)
    metrics.setdefault("_meta", {}).update(_clean(items))
    _write_metrics(profile, metrics)


def _write_metrics(profile: str, metrics: dict) -> None:
    """Write ``metrics.json`` atomically (a temporary file, then a rename): a notebook reading it while
    another writes it (two kernels on one profile) sees the old file or the new one, never half of one."""
    path = _metrics_path(profile)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


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
             "computed by this run. `met` is blank where no target applies. For an error against the converged "
             "reference, *training MD* is the training MD's own error and *floor* the mean error of independent MD "
             "of the training length (pieces of the reference): what an ideal generator trained on it reaches.", ""]
    if meta:
        lines += ["## Run", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in sorted(meta.items())]
        lines.append("")
    for section in sorted(k for k in metrics if not k.startswith("_")):
        lines += [f"## {section}", "",
                  "| quantity | paper | this run | reference | training MD | floor | unit | target | met | how measured |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for key, e in metrics[section].items():
            lines.append("| " + " | ".join([
                key, _fmt(e.get("paper")), _fmt(e.get("value")), _fmt(e.get("reference")),
                _fmt(e.get("training_md")), _fmt(e.get("floor")),
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


# --------------------------------------------------------------------------------------------------
# Targets, declared once, and one recorder per notebook section
# --------------------------------------------------------------------------------------------------

#: Profiles whose runs are too small to be held to the science targets (recorded, never assessed).
UNASSESSED_PROFILES = ("smoke",)


class Target:
    """An acceptance target of one recorded number, with the bound that applies in each profile.

    Parameters
    ----------
    kind : {"max", "min", "range", "rel"}
        ``"max"``: value <= bound; ``"min"``: value >= bound; ``"range"``: lo <= value <= hi
        (``bound = (lo, hi)``); ``"rel"``: an error against the converged reference at most ``bound``
        times the equal-length floor (the ``floor`` given to :meth:`assess`: independent MD of the
        training length). For a list value every element must pass ("each within ...").
    bound : float or (float, float)
        The bound of the main (cpu) and paper profiles.
    per_profile : dict, optional
        Profile name -> bound for that profile (e.g. ``{"class": 0.15}``: looser for the short
        class profile), or ``None`` to leave it unassessed there. ``smoke`` is never assessed
        unless it is named here.
    text : str, optional
        How the target reads in ``REPORT.md`` beside the bound, e.g. ``"each within {} of exact"``;
        ``{}`` is replaced by the bound. Default: ``"<= {}"``, ``">= {}"`` or ``"{lo}-{hi}"``.

    Examples
    --------
    >>> t = Target("max", 0.10, per_profile={"class": 0.15}, text="each within {} of exact")
    >>> t.assess([0.02, 0.12], "class")
    ('each within 0.15 of exact (class profile)', True)
    >>> t.assess([0.02, 0.12], "cpu")
    ('each within 0.1 of exact', False)
    """

    def __init__(self, kind: str, bound, per_profile: dict | None = None, text: str | None = None):
        if kind not in ("max", "min", "range", "rel"):
            raise ValueError(f"kind must be 'max', 'min', 'range' or 'rel', got {kind!r}")
        self.kind, self.bound, self.per_profile, self._text = kind, bound, dict(per_profile or {}), text

    def __repr__(self) -> str:
        return f"Target({self.kind!r}, {self.bound!r}, per_profile={self.per_profile!r})"

    def bound_for(self, profile: str):
        """The bound that applies to ``profile``, or None where it is not assessed."""
        if profile in self.per_profile:
            return self.per_profile[profile]
        return None if profile in UNASSESSED_PROFILES else self.bound

    def describe(self, profile: str) -> str:
        """The target in words for ``profile`` (the main bound, marked unassessed where none applies)."""
        b = self.bound_for(profile)
        shown = self.bound if b is None else b
        fmt = (lambda x: f"{x:g}" if isinstance(x, (int, float)) else str(x))
        if self._text:
            words = self._text.replace("{}", fmt(shown) if self.kind != "range" else f"{fmt(shown[0])}-{fmt(shown[1])}")
        elif self.kind == "range":
            words = f"{fmt(shown[0])}-{fmt(shown[1])}"
        elif self.kind == "rel":
            words = f"<= {fmt(shown)} x the equal-length floor"
        else:
            words = ("<= " if self.kind == "max" else ">= ") + fmt(shown)
        if b is None:
            return f"{words} (not assessed in the {profile} profile)"
        return words + (f" ({profile} profile)" if profile in self.per_profile else "")

    def assess(self, value, profile: str, floor=None) -> tuple[str, bool | None]:
        """``(target text, met)`` for ``value`` in ``profile``; ``met`` is None where it is not assessed
        (and for a ``"rel"`` target without a finite ``floor``)."""
        import numpy as np

        b = self.bound_for(profile)
        text = self.describe(profile)
        if self.kind == "rel" and b is not None:
            if floor is None or not np.isfinite(floor):
                return text + " (no floor)", None
            text = f"{text} ({_fmt(float(floor))}) = {_fmt(float(b * floor))}"
            b = b * floor
        if b is None or value is None:
            return text, None
        v = np.asarray(_clean(value), dtype=float)
        if v.size == 0 or not np.all(np.isfinite(v)):
            return text, False
        if self.kind in ("max", "rel"):
            ok = np.all(v <= b)
        elif self.kind == "min":
            ok = np.all(v >= b)
        else:
            ok = np.all((v >= b[0]) & (v <= b[1]))
        return text, bool(ok)


#: Every acceptance target, declared once: ``(section, key) -> Target``. Notebooks record the number
#: through :class:`Recorder`, which looks its target up here and assesses it; a target changes here only.
TARGETS: dict[tuple[str, str], Target] = {
    # 01: four-well (exact answer known)
    ("four_well", "tv_lss"): Target("max", 0.02, per_profile={"class": 0.04}),
    ("four_well", "timescales_lss_rel_error"): Target("max", 0.10, per_profile={"class": 0.15},
                                                      text="each within {} of exact"),
    # 02: Trp-cage data
    ("trpcage_data", "n_transitions"): Target("min", 30, per_profile={"smoke": 3}),
    ("trpcage_data", "folded_fraction"): Target("range", (0.3, 0.7)),
    # the paper's data regime: about a dozen events of the slowest process (the proline flip)
    ("trpcage_data", "n_flips"): Target("range", (10, 30), per_profile={"class": (5, 30)}),
    ("trpcage_data", "state_populations"): Target("min", 0.05, text="each >= {}"),
    ("trpcage_data", "simulation_seconds"): Target("max", 300, per_profile={"class": 60}),
    ("trpcage_data", "simulation_cpu_seconds"): Target("max", 300, per_profile={"class": 60},
                                                       text="<= {} per core"),
    # 06: generation
    ("performance", "lss_peak_memory_mb"): Target("max", 2048, per_profile={"smoke": 2048}),
    # 08: adaptive sampling, the LSS-guided strategy at the largest budget within target_fraction of the training
    # MD (means over seeds); the notebook reads these bounds for its figure and for target_met (plain MD must miss)
    ("trpcage_adaptive", "rmse_lss_at_target"): Target("max", 0.5, text="<= {} kT"),
    ("trpcage_adaptive", "t1_err_at_target"): Target("max", 0.2, text="<= {} (relative)"),
    # 07: the class profile's reference is 2x the training data (the cpu profile's 20x)
    ("trpcage", "reference_length_factor"): Target("min", 20, per_profile={"class": 2}),
    # 07: the TICA surfaces' target is relative to the equal-length floor like the others
    ("trpcage", "tica_timescales_over_lag"): Target("min", 1.0, text="each >= {} lag"),
    ("trpcage", "reference_state_populations"): Target("min", 0.05, text="each >= {}"),
    ("trpcage", "tica_fes_rmse_tic1_tic2_vs_floor"): Target("rel", 1.5, per_profile={"class": None}),
    ("trpcage", "tica_fes_rmse_tic1_tic3_vs_floor"): Target("rel", 1.5, per_profile={"class": None}),
    # 07: every error of the LSS against the converged reference, relative to independent MD of the
    # training length (lss.efficiency.QUANTITIES; the class profile's reference is too short for a floor)
    **{("trpcage", f"error_{q}_lss"): Target("rel", 1.5, per_profile={"class": None})
       for q in ("fq", "rg", "populations", "mfpt", "t1", "t2", "t3", "fpsi1", "fpsi2", "fpsi3")},
}


_CATALOG: dict | None = None


def catalog() -> dict:
    """Every recorded number's unit, description and paper value: ``lss/resources/metrics.yaml``.

    ``section -> key -> {"unit": ..., "how": ..., "paper": ...}``; ``unit`` and ``how`` are format
    strings filled from the recorder's context (the notebook's variables), e.g. ``"{unit}"``.
    """
    global _CATALOG
    if _CATALOG is None:
        import yaml

        _CATALOG = yaml.safe_load((Path(__file__).parent / "resources" / "metrics.yaml").read_text()) or {}
    return _CATALOG


class _Context(dict):
    """The recorder's context with the fields a pattern key matched (``{k}`` of ``rg_{k}``) on top."""

    def __init__(self, base: dict, fields: dict):
        super().__init__(fields)
        self.base = base

    def __missing__(self, name):
        return self.base[name]


class _Formatter(string.Formatter):
    """``str.format`` that writes ``n/a`` for a missing key of a variable (``{sim[cpu_count]}`` where the
    data's meta lacks it) and still raises for a missing variable (a typo in the catalog)."""

    def get_field(self, field_name, args, kwargs):
        try:
            return super().get_field(field_name, args, kwargs)
        except (KeyError, IndexError, AttributeError, TypeError):
            first = re.split(r"[.\[]", field_name, maxsplit=1)[0]
            kwargs[first]                      # a missing variable raises KeyError here
            return "n/a", first

    def format_field(self, value, format_spec):
        return value if value == "n/a" else super().format_field(value, format_spec)


_FORMATTER = _Formatter()


def _catalog_entry(section: str, key: str) -> tuple[dict | None, dict]:
    """The catalog entry of ``key``: an exact key, else the first pattern key (``"rg_{k}"``) matching it,
    with the matched fields (``{"k": "lss"}``)."""
    entries = catalog().get(section, {})
    if key in entries:
        return entries[key], {}
    for pattern, entry in entries.items():
        if "{" in pattern:
            parts = re.split(r"\{(\w+)\}", pattern)
            rx = "".join(re.escape(t) if i % 2 == 0 else f"(?P<{t}>[A-Za-z0-9_]+?)" for i, t in enumerate(parts))
            m = re.fullmatch(rx, key)
            if m:
                return entry, m.groupdict()
    return None, {}


def assess(profile: str, section: str, key: str, value, floor=None) -> tuple[str | None, bool | None]:
    """``(target text, met)`` of one number against :data:`TARGETS`; ``(None, None)`` without a target."""
    t = TARGETS.get((section, key))
    return (None, None) if t is None else t.assess(value, profile, floor=floor)


class Recorder:
    """Records a notebook's numbers into one section of ``metrics.json``, assessing declared targets.

    One per notebook section, in place of a copied ``rec = lambda ...``::

        rec = results.Recorder(profile, "four_well", NB)
        rec("tv_lss", tv_lss, "1", "total variation of the LSS histogram to the exact one")
        print(rec.verdict())        # "targets met: tv_lss, ..." or "targets NOT met: ..."

    Parameters
    ----------
    profile, section, notebook : str
        As for :func:`record`.

    Calling it, ``rec(key, value, unit, how, **kw)``, is :func:`record` with these three filled in.
    When ``kw`` gives neither ``target`` nor ``met`` and ``(section, key)`` is in :data:`TARGETS`,
    the target text and ``met`` come from there (:func:`assess`); an explicit ``target``/``met``
    wins (for a target that depends on the run, e.g. only for a paper-sized ensemble).
    ``rec.assessed`` keeps ``key -> (target, met)`` of every assessed number, in order.
    """

    def __init__(self, profile: str, section: str, notebook: str, context: dict | None = None):
        self.profile, self.section, self.notebook = profile, section, notebook
        self.context = context if context is not None else {}
        self.assessed: dict[str, tuple[str, bool | None]] = {}

    def __repr__(self) -> str:
        return f"Recorder({self.profile!r}, {self.section!r}, {self.notebook!r})"

    def __call__(self, key: str, value: Any, unit: str | None = None, how: str | None = None, **kw) -> dict:
        if unit is None or how is None:
            unit, how, kw = self._described(key, unit, how, kw)
        if "target" not in kw and "met" not in kw:
            text, met = assess(self.profile, self.section, key, value, floor=kw.get("floor"))
            if text is not None:
                kw.update(target=text, met=met)
        entry = record(self.profile, self.section, key, value, unit, how=how, notebook=self.notebook, **kw)
        if entry.get("target") is not None:
            self.assessed[key] = (entry["target"], entry.get("met"))
        return entry

    def many(self, **values) -> None:
        """Record several catalogued numbers at once: ``rec.many(lag=tau * ft, n_components=m)``."""
        for key, value in values.items():
            self(key, value)

    def _described(self, key, unit, how, kw):
        """Unit, description and paper value of ``key`` from :data:`CATALOG`, formatted with :attr:`context`."""
        entry, fields = _catalog_entry(self.section, key)
        if entry is None:
            raise KeyError(f"{self.section}.{key} is not in lss/resources/metrics.yaml: give unit and how, or add it there")
        ctx = _Context(self.context, fields)
        try:
            unit = unit if unit is not None else _FORMATTER.vformat(str(entry.get("unit", "1")), (), ctx)
            how = how if how is not None else _FORMATTER.vformat(str(entry["how"]), (), ctx)
        except KeyError as e:
            raise KeyError(f"the description of {self.section}.{key} (lss/resources/metrics.yaml) needs {e}, which the "
                           f"notebook's variables do not provide (neither a variable nor a key of one)") from None
        if "paper" in entry and "paper" not in kw:
            kw = kw | {"paper": entry["paper"]}
        return unit, how, kw

    def verdict(self) -> str:
        """One line: which of this section's recorded targets were met, missed, or not assessed."""
        met = [k for k, (_, m) in self.assessed.items() if m is True]
        missed = [k for k, (_, m) in self.assessed.items() if m is False]
        skipped = [k for k, (_, m) in self.assessed.items() if m is None]
        parts = []
        if missed:
            parts.append(f"targets NOT met: {', '.join(missed)}")
        if met:
            parts.append(f"met: {', '.join(met)}")
        if skipped:
            parts.append(f"not assessed in the {self.profile} profile: {', '.join(skipped)}")
        return f"{self.section}: " + ("; ".join(parts) if parts else "no targets recorded")
