"""Show molecular structures: an interactive nglview widget behind one guard, and a static figure.

Every notebook that shows structures calls :func:`show_structures` and nothing else: it builds the
nglview widget when nglview imports and its Python half asks for the JupyterLab extension version
that is installed, and it always (unless told not to) draws a static matplotlib 3-D figure of the
same structures, which shows in any front end, in executed notebooks saved to disk and in a
rendered site, where widgets stay blank.

Example (notebook)::

    from lss.viewer import show_structures
    show_structures(window, ds.topology, labels=[f"t = {t:.3g} ns" for t in times])

The returned :class:`StructureView` displays itself (widget first, then the figure) when it is the
last expression of a cell.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

#: nglview version whose Python half and bundled JupyterLab extension agree (both 3.1.5).
#: nglview 4.0.1's Python half asks for 4.0 while its extension registers 3.1.5 (nglview#1181).
NGLVIEW_PIN = "4.0"

#: Set ``LSS_VIEWER=static`` to skip the widget everywhere (e.g. on a machine without a browser).
ENV_VAR = "LSS_VIEWER"


@dataclass
class StructureView:
    """What :func:`show_structures` made.

    Attributes
    ----------
    widget : nglview.NGLWidget or None
        The interactive viewer, or None where nglview is missing, mismatched or switched off.
    figure : matplotlib.figure.Figure or None
        The static 3-D figure (None when ``static=False``).
    note : str
        Why there is no widget ("" when there is one).
    """

    widget: Any = None
    figure: Any = None
    note: str = ""
    _png: bytes | None = field(default=None, repr=False)

    def png(self) -> bytes | None:
        """The static figure as PNG bytes (rendered once), or None without a figure."""
        if self._png is None and self.figure is not None:
            buf = io.BytesIO()
            self.figure.savefig(buf, format="png", dpi=self.figure.dpi, bbox_inches="tight")
            self._png = buf.getvalue()
        return self._png

    def savefig(self, path, **kwargs) -> None:
        """Save the static figure (``matplotlib.figure.Figure.savefig`` arguments)."""
        if self.figure is None:
            raise ValueError("this view has no static figure (made with static=False)")
        self.figure.savefig(path, **kwargs)

    def _ipython_display_(self) -> None:
        from IPython.display import Image, display

        if self.widget is not None:
            display(self.widget)
        if self.note:
            print(self.note)
        png = self.png()
        if png is not None:
            # a PNG, not the Figure object: shows whatever matplotlib backend the kernel uses
            display(Image(data=png, format="png"))


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in str(v).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def installed_labextension_version(name: str = "nglview-js-widgets") -> str | None:
    """Version of the JupyterLab extension ``name`` found on Jupyter's data path, or None.

    This is the JavaScript half that a JupyterLab started from this environment loads.
    """
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:  # pragma: no cover - jupyter_core comes with ipykernel
        return None
    for base in jupyter_path("labextensions"):
        pkg = os.path.join(base, name, "package.json")
        if os.path.exists(pkg):
            try:
                with open(pkg) as f:
                    return json.load(f).get("version")
            except (OSError, ValueError):
                return None
    return None


def nglview_status() -> tuple[bool, str]:
    """Whether the nglview widget can render here, and if not, why (one line with the fix).

    Returns
    -------
    ok : bool
        True when nglview imports and the widget version its Python half requests is provided
        by the installed JupyterLab extension (same major version, extension not older).
    reason : str
        ``""`` when ``ok``; otherwise what is wrong and the command that fixes it.
    """
    if os.environ.get(ENV_VAR, "").lower() == "static":
        return False, f"3-D viewer switched off ({ENV_VAR}=static); static figure only"
    try:
        import nglview
        from nglview._frontend import __frontend_version__ as wanted
    except Exception as e:  # ImportError, or a broken install raising anything at import
        return False, (f"nglview is not usable here ({type(e).__name__}: {e}); static figure only. "
                       f"For the interactive viewer: pip install nglview=={NGLVIEW_PIN}")
    have = installed_labextension_version()
    if have is not None:
        w, h = _version_tuple(wanted), _version_tuple(have)
        if not w or not h or w[0] != h[0] or h < w:
            return False, (f"nglview {getattr(nglview, '__version__', '?')} asks for widget version {wanted} but "
                           f"the installed JupyterLab extension is {have}, so the viewer would stay blank; "
                           f"static figure only. Fix: pip install nglview=={NGLVIEW_PIN}")
    return True, ""


def _as_frames(xyz, topology):
    """``(xyz (n_frames, n_atoms, 3) float32 in nm, mdtraj.Topology)`` from the accepted inputs."""
    from .structure import _xyz

    topology = getattr(xyz, "topology", None) if topology is None else topology     # an mdtraj.Trajectory's
    arr = _xyz(xyz, "xyz")
    if topology is None:
        raise ValueError("a topology is needed with coordinate arrays (e.g. ds.topology)")
    if topology.n_atoms != arr.shape[1]:
        raise ValueError(f"the topology has {topology.n_atoms} atoms but xyz has {arr.shape[1]} per frame")
    return arr, topology


def _bonds(topology) -> np.ndarray:
    """Atom index pairs to draw: the topology's bonds, else consecutive atoms of each chain."""
    pairs = [(a.index, b.index) for a, b in topology.bonds]
    if not pairs:
        for chain in topology.chains:
            idx = [a.index for a in chain.atoms]
            pairs += list(zip(idx[:-1], idx[1:]))
    return np.asarray(pairs, dtype=int).reshape(-1, 2)


def _residue_colour_index(topology) -> np.ndarray:
    """Per atom: its residue's position along the chain in [0, 1] (first residue 0, last 1)."""
    r = np.array([a.residue.index for a in topology.atoms], dtype=float)
    return (r - r.min()) / max(r.max() - r.min(), 1.0)


def static_figure(xyz, topology, *, labels: Sequence[str] | None = None, colors: Sequence | None = None,
                  overlay: bool = False, reference=None, max_panels: int = 6, title: str | None = None):
    """Draw structures as a static matplotlib 3-D figure (one panel per frame, or all overlaid).

    Parameters are those of :func:`show_structures`; returns a ``matplotlib.figure.Figure``
    that is not registered with pyplot (it is never shown twice, and closing is not needed).
    """
    from matplotlib.figure import Figure

    frames, top = _as_frames(xyz, topology)
    n = len(frames)
    ref = None if reference is None else np.asarray(reference, dtype=np.float32).reshape(-1, 3)
    if overlay or n == 1:
        picks, n_panels = np.arange(n), 1
    else:
        picks = np.unique(np.linspace(0, n - 1, min(max_panels, n)).round().astype(int))
        n_panels = len(picks)
    cols = min(n_panels, 3 if n_panels <= 9 else 4)
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(3.2 * cols, 3.2 * rows + (0.35 if title else 0)), dpi=100)
    bonds = _bonds(top)
    res_c = _residue_colour_index(top)
    everything = frames[picks] if ref is None else np.concatenate([frames[picks], ref[None]])
    lo_, hi_ = everything.reshape(-1, 3).min(0), everything.reshape(-1, 3).max(0)
    centre = (lo_ + hi_) / 2
    half = float((hi_ - lo_).max() / 2) * 1.05 or 1.0

    def draw(ax, x, colour, label, lw=1.2, size=14, alpha=1.0):
        for a, b in bonds:
            ax.plot(*x[[a, b]].T, "-", color=colour if colour is not None else "0.35", lw=lw, alpha=alpha)
        if colour is None:
            ax.scatter(*x.T, c=res_c, cmap="viridis", vmin=0, vmax=1, s=size, depthshade=False, alpha=alpha, label=label)
        else:
            ax.scatter(*x.T, color=colour, s=size, depthshade=False, alpha=alpha, label=label)

    if overlay or n == 1:
        groups = [list(picks)]
    else:
        groups = [[p] for p in picks]
    for k, group in enumerate(groups):
        ax = fig.add_subplot(rows, cols, k + 1, projection="3d")
        if ref is not None:
            draw(ax, ref, "0.8", "reference", lw=3, size=6, alpha=0.7)
        for j in group:
            colour = colors[j] if colors is not None else (f"C{j % 10}" if overlay and n > 1 else None)
            draw(ax, frames[j], colour, labels[j] if labels is not None else None)
        if not overlay:   # each panel fits its own molecule (and the reference): the structure fills the panel
            own = np.concatenate([frames[group]] + ([ref[None]] if ref is not None else [])).reshape(-1, 3)
            lo_p, hi_p = own.min(0), own.max(0)
            centre, half = (lo_p + hi_p) / 2, float((hi_p - lo_p).max() / 2) or 1.0
        ax.set(xlim=(centre[0] - half, centre[0] + half), ylim=(centre[1] - half, centre[1] + half),
               zlim=(centre[2] - half, centre[2] + half), xticks=[], yticks=[], zticks=[])
        ax.set_box_aspect((1, 1, 1), zoom=1.2)
        ax.set_axis_off()                             # no box, no panes: the structure stands out
        if overlay and n > 1 and (labels is not None or ref is not None):
            ax.legend(fontsize=7, loc="upper left")
        elif labels is not None and len(group) == 1:
            ax.set_title(labels[group[0]], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.text(0.5, 0.005, "coordinates in nm; " + ("colour: structure" if overlay and n > 1 or colors is not None
                                                  else "colour: residue, first (purple) to last (yellow)")
             + ("; grey: reference" if ref is not None else ""), ha="center", va="bottom", fontsize=6, color="0.4")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def nglview_widget(xyz, topology, *, time=None, colors: Sequence | None = None, overlay: bool = False,
                   reference=None):
    """Build the nglview widget (no guard: raises when nglview is missing or fails).

    Parameters are those of :func:`show_structures`.
    """
    import mdtraj as md
    import nglview as nv

    frames, top = _as_frames(xyz, topology)

    def styled(view, component=None, colour="residueindex"):
        kw = {} if component is None else {"component": component}
        view.add_representation("backbone", color=colour, **kw)
        view.add_representation("spacefill", radius=1.0, color=colour, **kw)   # Angstrom (NGL's unit)

    if overlay:
        view = nv.NGLWidget()
        for j, x in enumerate(frames):
            comp = view.add_trajectory(md.Trajectory(x[None], top))
            comp.clear_representations()
            styled(view, j, colors[j] if colors is not None else "residueindex")
        n_comp = len(frames)
    else:
        traj = md.Trajectory(frames, top, time=None if time is None else np.asarray(time, dtype=float))
        view = nv.show_mdtraj(traj)
        view.clear_representations()
        styled(view)
        n_comp = 1
    if reference is not None:
        comp = view.add_trajectory(md.Trajectory(np.asarray(reference, dtype=np.float32).reshape(1, -1, 3), top))
        comp.clear_representations()
        view.add_representation("backbone", color="grey", opacity=0.5, component=n_comp)
    return view


def show_structures(xyz, topology=None, *, labels: Sequence[str] | None = None, colors: Sequence | None = None,
                    time=None, overlay: bool = False, reference=None, interactive: bool = True,
                    static: bool = True, max_panels: int = 6, title: str | None = None) -> StructureView:
    """Show structures in the nglview 3-D viewer where it works, and as a static 3-D figure.

    Parameters
    ----------
    xyz : array_like, shape (n_frames, n_atoms, 3) or (n_atoms, 3); list of (n_atoms, 3) arrays; or mdtraj.Trajectory
        Cartesian coordinates in nm (mdtraj's unit), e.g. a window of a trajectory or a few
        representative structures.
    topology : mdtraj.Topology, optional
        The atoms of every structure (``n_atoms`` of them); taken from ``xyz`` when it is a trajectory.
    labels : sequence of str, optional
        One per frame: titles of the static panels (legend entries when ``overlay``).
    colors : sequence of matplotlib colours, optional
        One per frame (e.g. ``"C0"``, ``"tab:red"``); default: colour by residue along the chain,
        or one colour per structure when ``overlay``.
    time : array_like, shape (n_frames,), optional
        Time of each frame (any unit), stored on the widget's trajectory.
    overlay : bool
        False: the frames are a trajectory (widget with a frame slider; static panels of up to
        ``max_panels`` evenly spaced frames). True: all structures at once, superposed as given
        (superpose them first, e.g. with ``lss.cwgan.superpose``).
    reference : array_like, shape (n_atoms, 3), optional
        A structure drawn in grey behind every panel (e.g. the native structure), in nm.
    interactive : bool
        Build the nglview widget (guarded: never raises; see :func:`nglview_status`).
    static : bool
        Draw the static figure. Keep it on in notebooks: it is what a reader without a live
        kernel (executed notebooks, the rendered site, GitHub) sees.
    max_panels : int
        Most static panels when not ``overlay``.
    title : str, optional
        Title of the static figure.

    Returns
    -------
    StructureView
        ``.widget`` (nglview.NGLWidget or None), ``.figure`` (matplotlib Figure or None),
        ``.note`` (why there is no widget). Displays widget, note and figure when it is the last
        expression of a notebook cell.
    """
    frames, top = _as_frames(xyz, topology)
    n = len(frames)
    for name, seq in (("labels", labels), ("colors", colors), ("time", time)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} frames")
    widget, note = None, ""
    if interactive:
        ok, note = nglview_status()
        if ok:
            try:
                widget = nglview_widget(frames, top, time=time, colors=colors, overlay=overlay, reference=reference)
            except Exception as e:  # a widget that cannot be built must not stop the notebook
                widget, note = None, f"nglview failed ({type(e).__name__}: {e}); static figure only"
    figure = static_figure(frames, top, labels=labels, colors=colors, overlay=overlay, reference=reference,
                           max_panels=max_panels, title=title) if static else None
    return StructureView(widget=widget, figure=figure, note=note)
