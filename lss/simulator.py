"""The latent space simulator: encoder, propagator and decoder in one box (paper sections 2 and 3.2).

A :class:`LatentSpaceSimulator` joins the three trained networks of the method::

    structure --featurizer, scaler--> features --SRV encoder--> latent point x_0
    x_0 --MDN propagator, n lag steps--> x_0, x_1, ..., x_n        (latent trajectory)
    x_t --cWGAN decoder--> C-alpha structure at time t * lag * frame_time

and generates many trajectories at once: all trajectories advance together (one propagator call per
lag step) and their latent frames are decoded in large batches. One generated step is one lag of the
propagator, ``lag`` frames of its training data, i.e. ``lag * frame_time``.

Speed (paper: 100 trajectories x 10,440 steps, about 500 s on a GPU). Propagation is sequential in
time: 10,440 calls of the small MDN (3 -> 100 -> 100 -> 168) on 100 rows each, about 0.25 ms of CPU
per call, a third of it in the matrix products and the rest in the two dozen small tensor operations of
one mixture sample. Decoding is the 53 -> 200 -> 200 -> 200 -> 60 SiLU generator over 10^6 rows,
about 200 kFLOP per frame, which runs near the float32 peak of one core when fed batches of
:data:`DECODE_BATCH` rows (larger batches fall out of the cache and are slower). Both stages are
cheapest on one torch thread each: the propagator's calls are too small to split, and OpenMP
threads that wait for each other stall badly when other processes share the cores (measured: the
decoder on 2 threads took 10 times longer than on 1 on the loaded 2-core machine). On a CPU the
two stages therefore run *concurrently* in two Python threads: a worker propagates segment after
segment while the calling thread decodes the segments already made; when the propagation is done
the worker decodes too. On two idle cores the wall time is about ``max(propagation, (propagation +
decoding) / 2)``, not their sum. ``benchmarks/generation.py`` measures the stages and the whole.

Reproducibility. Randomness is drawn per *segment* of :data:`SEGMENT_STEPS` lag steps of a *group*
of up to :data:`GROUP_TRAJ` trajectories, from seeds derived from ``random_state`` with
``numpy.random.SeedSequence(random_state, spawn_key=(group, segment))``. The same request (number
of trajectories, steps, start, seed, device) therefore gives the same trajectories whatever
``chunk_frames`` is, and :meth:`~LatentSpaceSimulator.generate` and
:meth:`~LatentSpaceSimulator.generate_to_disk` agree frame for frame.

Persistence. :meth:`~LatentSpaceSimulator.save` writes one lss archive (:mod:`lss.persist`: arrays
and JSON, no pickle; format tag ``lss.simulator/2``) with the encoder (featurizer, scaler and SRV),
propagator and decoder, each under its own format tag, the topology, the time step, the
configuration, the package versions, the training-data fingerprint and a SHA-256 checksum of the
content; :meth:`~LatentSpaceSimulator.load` never runs code from the file and refuses files of
another format or version, and truncated or damaged files, with a message that says so.

The pipeline's parts (propagation seeded per segment, decoding, in-order chunks, the worker thread)
are in :mod:`lss.pipeline`. Trajectory
files are written by :class:`lss.trajio.TrajectoryWriter` and read back by
:func:`lss.trajio.read_generation`.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import mdtraj as md
import numpy as np
import torch

from . import cwgan, flow, mdn, srv  # noqa: F401  (their classes register the format tags a simulator file holds)
from .base import Estimator
from .features import Encoder
from .persist import content_hash, object_from, package_versions, read_state, state_of, write_state
from .pipeline import (DECODE_BATCH, GROUP_TRAJ, SEGMENT_STEPS, ChunkAssembler, DecodeWorker,  # noqa: F401
                       SegmentGenerator, run_pipelined)
from .trajio import (FORMATS, GENERATION_FORMAT, TrajectoryWriter, pdb_text, time_factor_ps, topology_from_dict,
                     topology_to_dict)
from .utils import as_points, get_device, torch_threads

_FORMAT = "lss.simulator/2"

#: Default bound on the frames decoded and held at once by :meth:`LatentSpaceSimulator.generate_to_disk`.
DEFAULT_CHUNK_FRAMES = 262_144


# --------------------------------------------------------------------------------------- helpers

def _positive_int(v, name: str, allow_zero: bool = False) -> int:
    ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    if not ok or v < (0 if allow_zero else 1):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {kind} integer, got {v!r}")
    return int(v)


def _latent_dim(est) -> int | None:
    """Latent dimension of a propagator or decoder (``n_components_``), None where unknown."""
    return getattr(est, "n_components_", None)


# -------------------------------------------------------------------------------------- results
@dataclass
class GeneratedEnsemble:
    """Trajectories made by :meth:`LatentSpaceSimulator.generate`.

    Attributes
    ----------
    latent : np.ndarray, shape (n_traj, n_steps + 1, m), float32
        Latent trajectories, in the units of the encoder's output; ``latent[:, 0]`` is the start.
    xyz : np.ndarray, shape (n_traj, n_steps + 1, n_atoms, 3), float32, nm, or None
        Decoded structures (None with ``decode=False``); frame ``t`` decodes ``latent[:, t]``.
    topology : mdtraj.Topology
        Topology of the decoded structures (C-alpha).
    timestep : float
        Time between frames (one lag of the propagator), in ``time_unit``.
    time_unit : str
    seed : int
        The seed used (drawn at random and recorded here when none was given).
    clipped_fraction : float
        Fraction of propagated latent coordinates clipped to the propagator's training range.
    timings : dict
        Seconds: ``total_s`` (wall), ``propagate_s`` and ``decode_s`` (wall time each stage was busy;
        with the pipeline they overlap), ``propagate_cpu_s`` and ``decode_cpu_s`` (CPU time of the
        thread that ran the stage: what the stage costs on an otherwise idle core).
    """

    latent: np.ndarray
    xyz: np.ndarray | None
    topology: md.Topology
    timestep: float
    time_unit: str
    seed: int
    clipped_fraction: float = 0.0
    timings: dict = field(default_factory=dict)

    @property
    def n_traj(self) -> int:
        return self.latent.shape[0]

    @property
    def n_frames(self) -> int:
        """Frames per trajectory (``n_steps + 1``)."""
        return self.latent.shape[1]

    @property
    def timestep_ps(self) -> float:
        return self.timestep * time_factor_ps(self.time_unit)

    @property
    def time(self) -> np.ndarray:
        """Time of each frame, ps, shape (n_frames,)."""
        return np.arange(self.n_frames) * self.timestep_ps

    def trajectory(self, i: int) -> md.Trajectory:
        """Trajectory ``i`` as an ``mdtraj.Trajectory`` (a view of ``xyz[i]``, time in ps)."""
        if self.xyz is None:
            raise ValueError("this ensemble was generated with decode=False: there are no structures")
        return md.Trajectory(self.xyz[i], self.topology, time=self.time)

    @property
    def trajectories(self) -> list[md.Trajectory]:
        """All trajectories as ``mdtraj.Trajectory`` objects."""
        return [self.trajectory(i) for i in range(self.n_traj)]

    def __len__(self) -> int:
        return self.n_traj

    def __getitem__(self, i: int) -> md.Trajectory:
        return self.trajectory(i)

    def __repr__(self) -> str:
        return (f"GeneratedEnsemble(n_traj={self.n_traj}, n_frames={self.n_frames}, "
                f"timestep={self.timestep:g} {self.time_unit}, decoded={self.xyz is not None}, seed={self.seed})")

    def summary(self, wall_s: float, peak_mb: float) -> str:
        """The ensemble, its speed and its cost, in two lines.

        Parameters
        ----------
        wall_s : float
            Wall seconds the generation took (measured by the caller, e.g. with the mdtraj trajectories).
        peak_mb : float
            Peak resident memory during the generation, MB (:class:`lss.utils.PeakMemory`).
        """
        t = self.timings
        return (f"{self!r}\nin memory: {wall_s:.2f} s wall = {self.n_traj * self.n_frames / wall_s:,.0f} frames/s; "
                f"CPU: propagation {t['propagate_cpu_s']:.2f} s, decoding {t['decode_cpu_s']:.2f} s; "
                f"peak RSS {peak_mb:,.0f} MB")


# ----------------------------------------------------------------------------------- simulator
class LatentSpaceSimulator(Estimator):
    """Encoder + propagator + decoder: synthetic molecular trajectories from a latent space simulator.

    Parameters
    ----------
    encoder : lss.features.Encoder or None
        Maps structures to latent points ``(n_frames, m)`` (featurizer -> scaler -> SRV, one object).
        None gives a simulator that starts from latent points only.
    propagator : lss.mdn.MDNPropagator
        Fitted latent propagator; its ``lag`` is in frames of its training data.
    decoder : lss.cwgan.CWGAN or lss.flow.FlowDecoder
        Fitted decoder: ``generate(latent, random_state, batch_size, device, out)`` ->
        ``(n, n_atoms, 3)`` nm.
    topology : mdtraj.Topology
        Topology of the decoded structures (C-alpha, ``decoder.n_atoms_`` atoms).
    frame_time : float
        Time between the frames the propagator was trained on, in ``time_unit``; one generated
        step is ``propagator.lag * frame_time``.
    time_unit : str
        ``'fs'``, ``'ps'``, ``'ns'``, ``'us'`` (``'ns'`` of *model time* for the Go-model data).
    config : dict, optional
        JSON-able description of how the networks were made (profile, hyperparameters, ...).
    data_fingerprint : str, optional
        Fingerprint of the training data (e.g. :func:`lss.utils.hash_arrays` of the features).
    start_latent : np.ndarray, shape (m,) or (k, m), optional
        Default start of :meth:`generate` when it is given no start; without it, the decoder's
        reference structure (``decoder.reference_``) is encoded.

    Attributes
    ----------
    lag : int
        The propagator's lag, frames of its training data.
    timestep : float
        Time of one generated step, ``lag * frame_time``, in ``time_unit``.
    n_components_ : int
        The latent dimension ``m`` (the propagator's).
    n_atoms : int
    """

    _format = _FORMAT
    _fitted_attr = "propagator"

    def __init__(self, encoder, propagator, decoder, topology: md.Topology, frame_time: float,
                 time_unit: str = "ps", config: dict | None = None, data_fingerprint: str | None = None,
                 start_latent=None):
        if encoder is not None and not isinstance(encoder, Encoder):
            raise ValueError(f"encoder must be an lss.features.Encoder (featurizer, scaler and SRV in one), "
                             f"got {type(encoder).__name__}")
        if propagator is None or not hasattr(propagator, "sample"):
            raise ValueError("propagator must be a fitted lss.mdn.MDNPropagator (it has no sample method)")
        if decoder is None or not hasattr(decoder, "generate"):
            raise ValueError("decoder must be a fitted lss decoder (CWGAN or FlowDecoder): it has no generate method")
        if not isinstance(topology, md.Topology):
            raise ValueError(f"topology must be an mdtraj.Topology, got {type(topology).__name__}")
        if not (isinstance(frame_time, (int, float, np.number)) and np.isfinite(frame_time) and frame_time > 0):
            raise ValueError(f"frame_time must be a positive number, got {frame_time!r}")
        time_factor_ps(time_unit)
        n_atoms = getattr(decoder, "n_atoms_", topology.n_atoms)
        if n_atoms != topology.n_atoms:
            raise ValueError(f"topology has {topology.n_atoms} atoms but the decoder makes {n_atoms}")
        m_prop, m_dec = _latent_dim(propagator), _latent_dim(decoder)
        if m_prop is not None and m_dec is not None and m_prop != m_dec:
            raise ValueError(f"propagator latent dimension {m_prop} differs from the decoder's {m_dec}")
        m_enc = getattr(encoder, "n_components_", None)
        if m_enc is not None and m_prop is not None and m_enc != m_prop:
            raise ValueError(f"the encoder makes {m_enc} latent coordinates but the propagator takes {m_prop}")
        self.encoder = encoder
        self.propagator = propagator
        self.decoder = decoder
        self.topology = topology
        self.frame_time = float(frame_time)
        self.time_unit = time_unit
        self.config = dict(config or {})
        self.data_fingerprint = data_fingerprint
        self.start_latent = None if start_latent is None else self._as_latent(start_latent, "start_latent")
        self.device = "cpu"

    # ------------------------------------------------------------------------------ properties
    @property
    def lag(self) -> int:
        return int(self.propagator.lag)

    @property
    def n_components_(self) -> int:
        """The latent dimension ``m`` (the propagator's)."""
        return int(_latent_dim(self.propagator))

    @property
    def featurizer(self):
        """The encoder's featurizer (None without an encoder)."""
        return None if self.encoder is None else self.encoder.featurizer

    @property
    def scaler(self):
        """The encoder's feature scaler (None without an encoder)."""
        return None if self.encoder is None else self.encoder.scaler

    @property
    def n_atoms(self) -> int:
        return self.topology.n_atoms

    @property
    def timestep(self) -> float:
        """Time of one generated step (one lag), in ``time_unit``."""
        return self.lag * self.frame_time

    @property
    def timestep_ps(self) -> float:
        return self.timestep * time_factor_ps(self.time_unit)

    def __repr__(self) -> str:
        return (f"LatentSpaceSimulator(m={self.n_components_}, n_atoms={self.n_atoms}, lag={self.lag} frames, "
                f"timestep={self.timestep:g} {self.time_unit}, encoder={type(self.encoder).__name__}, "
                f"propagator={type(self.propagator).__name__}, decoder={type(self.decoder).__name__})")

    # -------------------------------------------------------------------------- encode, decode
    def _as_latent(self, x, name: str) -> np.ndarray:
        return as_points(x, self.n_components_, name)

    def encode(self, structures) -> np.ndarray:
        """Latent points of structures (the :class:`~lss.features.Encoder`: featurizer -> scaler -> SRV).

        Parameters
        ----------
        structures : mdtraj.Trajectory, or np.ndarray of shape (n_atoms, 3) or (k, n_atoms, 3), nm
            In the featurizer's topology (an all-atom trajectory is reduced to its C-alpha atoms when the
            featurizer's topology is C-alpha only).

        Returns
        -------
        latent : np.ndarray, shape (k, m), float32
        """
        if self.encoder is None:
            raise ValueError("start: this simulator has no encoder, so it cannot start from a structure; "
                             "give start_latent instead")
        z = self.encoder.transform(structures)
        if z.ndim != 2 or z.shape[1] != self.n_components_:
            raise ValueError(f"the encoder returns {z.shape[-1]} latent coordinates but the propagator has "
                             f"{self.n_components_}")
        return z

    def decode(self, latent, random_state: int | None = None, device: str | None = None) -> np.ndarray:
        """Structures of latent points (one independent noise draw per frame).

        Parameters
        ----------
        latent : np.ndarray, shape (n_frames, m)
        random_state : int, optional

        Returns
        -------
        xyz : np.ndarray, shape (n_frames, n_atoms, 3), float32, nm
        """
        lat = self._as_latent(latent, "latent").astype(np.float32)
        with torch_threads(1 if get_device(device or self.device).type == "cpu" else None):
            return self.decoder.generate(lat, random_state=random_state,
                                         batch_size=getattr(self.decoder, "decode_batch", DECODE_BATCH),
                                         device=device or self.device)

    def _start_points(self, n_traj: int, start, start_latent) -> np.ndarray:
        if start is not None and start_latent is not None:
            raise ValueError("give either start (structures) or start_latent (latent points), not both")
        if start_latent is not None:
            x0 = self._as_latent(start_latent, "start_latent")
        elif start is not None:
            x0 = self.encode(start).astype(np.float64)
        elif self.start_latent is not None:
            x0 = self.start_latent
        elif getattr(self.decoder, "reference_", None) is not None and self.encoder is not None \
                and self.encoder.featurizer.topology.n_atoms == self.n_atoms:
            x0 = self.encode(self.decoder.reference_).astype(np.float64)
        else:
            raise ValueError("start: no start given and this simulator has no default (start_latent) nor an "
                             "encoder to encode the decoder's reference structure; give start or start_latent")
        return x0[np.arange(n_traj) % len(x0)]

    # ---------------------------------------------------------------------------- generation
    def _check_request(self, n_traj, n_steps, chunk_frames, random_state):
        n_traj = _positive_int(n_traj, "n_traj")
        n_steps = _positive_int(n_steps, "n_steps", allow_zero=True)
        chunk_frames = _positive_int(chunk_frames, "chunk_frames")
        if random_state is None:
            random_state = int(np.random.SeedSequence().generate_state(1, dtype=np.uint32)[0])
        elif not isinstance(random_state, (int, np.integer)) or isinstance(random_state, bool) or random_state < 0:
            raise ValueError(f"random_state must be a non-negative integer or None, got {random_state!r}")
        return n_traj, n_steps, chunk_frames, int(random_state)

    def _run(self, x0, n_steps, seed, device, decode, chunk_frames, pipeline, progress, sink):
        """Propagate and decode group by group, segment by segment; hand chunks to ``sink`` in order.

        The parts: a :class:`SegmentGenerator` propagates, :class:`DecodeWorker` objects decode, a
        :class:`ChunkAssembler` groups segments into chunks of at most ``chunk_frames`` frames for
        ``sink``; with ``pipeline`` (and ``decode``) :func:`run_pipelined` runs propagation in a worker
        thread beside the decoding. Returns the ``clipped`` fraction, wall and CPU (thread) seconds
        of each stage (``prop_s``, ``prop_cpu_s``, ``dec_s``, ``dec_cpu_s``; decoding summed over
        threads) and ``chunks`` (frames per sink call).
        """
        from tqdm.auto import tqdm

        dev = get_device(device or self.device)
        on_cpu = dev.type == "cpu"
        pipeline = bool(pipeline and decode)
        segments = SegmentGenerator(self.propagator, x0, n_steps, seed, dev, single_thread=on_cpu)
        seg_frames = min(GROUP_TRAJ, len(x0)) * max(1, min(SEGMENT_STEPS, n_steps))
        bar = tqdm(total=len(x0) * (n_steps + 1), desc="generate", unit="frame", unit_scale=True,
                   disable=not progress, mininterval=0.5)
        assemble = ChunkAssembler(sink, max(1, chunk_frames // seg_frames), bar)
        decoders = [DecodeWorker(self.decoder, seed, dev, self.n_atoms)]
        # pipeline on a CPU: one torch thread per Python thread (two threads, two cores); sequential:
        # the propagator runs on one thread (MDNPropagator.sample's default) and decoding on torch's setting
        try:
            with torch_threads(1) if (on_cpu and pipeline) else torch_threads(None), torch.inference_mode():
                if pipeline:
                    # the worker's own decoder copy: no module shared by threads
                    decoders.append(DecodeWorker(copy.deepcopy(self.decoder), seed, dev, self.n_atoms))
                    run_pipelined(segments, decoders[0], decoders[1], assemble)
                else:
                    for seg in segments:
                        assemble.add(decoders[0](seg) if decode else seg)
                    assemble.flush()
        finally:
            bar.close()
        return {"clipped": segments.clipped_fraction, "prop_s": segments.wall_s, "prop_cpu_s": segments.cpu_s,
                "dec_s": sum(d.wall_s for d in decoders), "dec_cpu_s": sum(d.cpu_s for d in decoders),
                "chunks": assemble.chunks}

    def generate(self, n_traj: int, n_steps: int, start=None, start_latent=None,
                 random_state: int | None = None, device: str | None = None, decode: bool = True,
                 chunk_frames: int = DEFAULT_CHUNK_FRAMES, pipeline: bool = True,
                 progress: bool = False) -> GeneratedEnsemble:
        """Generate ``n_traj`` synthetic trajectories of ``n_steps`` lag steps, in memory.

        Parameters
        ----------
        n_traj : int
            Number of independent trajectories (all propagated together).
        n_steps : int
            Lag steps per trajectory; each trajectory has ``n_steps + 1`` frames, one per
            ``timestep = lag * frame_time``.
        start : mdtraj.Trajectory or np.ndarray (n_atoms, 3) or (k, n_atoms, 3), nm, optional
            Start structure(s), encoded with the featurizer, scaler and encoder. Trajectory ``i``
            starts from structure ``i % k``.
        start_latent : np.ndarray, shape (m,) or (k, m), optional
            Start latent point(s) instead (trajectory ``i`` from point ``i % k``). Without either, the
            simulator's ``start_latent``, else its decoder's encoded reference structure.
        random_state : int, optional
            Seed. The same seed and request give the same trajectories (on the same device and
            library versions), whatever ``chunk_frames`` and ``pipeline``. None draws a seed; it is
            recorded in the result.
        device : str, optional
            ``'cpu'``, ``'cuda'``; default the simulator's device.
        decode : bool
            Decode the latent trajectories into structures (False: latent only).
        chunk_frames : int
            Frames decoded per chunk (rounded to whole segments of ``SEGMENT_STEPS`` steps).
        pipeline : bool
            Propagate in a worker thread while decoding in the calling thread (one torch thread
            each on a CPU). False runs the stages one after the other (for measurements).
        progress : bool
            tqdm progress bar over frames.

        Returns
        -------
        GeneratedEnsemble
            ``latent`` (n_traj, n_steps + 1, m) float32, ``xyz`` (n_traj, n_steps + 1, n_atoms, 3)
            float32 nm, mdtraj trajectories via ``trajectories`` / ``[i]`` with time in ps.

        Notes
        -----
        Memory: the result itself, 12 bytes per atom and frame (250 MB for 100 x 10,441 frames of 20
        atoms), plus one chunk; use :meth:`generate_to_disk` for requests larger than memory.
        """
        n_traj, n_steps, chunk_frames, seed = self._check_request(n_traj, n_steps, chunk_frames, random_state)
        x0 = self._start_points(n_traj, start, start_latent)
        n_frames = n_steps + 1
        latent = np.empty((n_traj, n_frames, self.n_components_), dtype=np.float32)
        xyz = np.empty((n_traj, n_frames, self.n_atoms, 3), dtype=np.float32) if decode else None

        def sink(sl, blocks):
            for f0, lat, xyz_blk in blocks:
                k = lat.shape[1]
                latent[sl, f0:f0 + k] = lat
                if xyz_blk is not None:
                    xyz[sl, f0:f0 + k] = xyz_blk

        tic = time.perf_counter()
        st = self._run(x0, n_steps, seed, device, decode, chunk_frames, pipeline, progress, sink)
        total = time.perf_counter() - tic
        return GeneratedEnsemble(latent=latent, xyz=xyz, topology=self.topology, timestep=self.timestep,
                                 time_unit=self.time_unit, seed=seed, clipped_fraction=st["clipped"],
                                 timings={"total_s": total, "propagate_s": st["prop_s"], "decode_s": st["dec_s"],
                                          "propagate_cpu_s": st["prop_cpu_s"], "decode_cpu_s": st["dec_cpu_s"]})

    def generate_to_disk(self, out_dir, n_traj: int, n_steps: int, fmt: str = "dcd", start=None,
                         start_latent=None, random_state: int | None = None, device: str | None = None,
                         chunk_frames: int = DEFAULT_CHUNK_FRAMES, prefix: str = "traj",
                         save_latent: bool = True, overwrite: bool = False, pipeline: bool = True,
                         progress: bool = False) -> dict:
        """Generate trajectories straight to files, in bounded memory whatever the size.

        Writes into ``out_dir``: one trajectory file per trajectory (``traj_000.dcd`` ...), a
        ``topology.pdb`` (first frame of trajectory 0), ``latent.npy`` (n_traj, n_steps + 1, m)
        float32, and ``generation.json``: time step (DCD files cannot hold it; XTC and HDF5 files also
        carry the time of each frame, in ps), seed, sizes, file names, timings, versions, model
        fingerprint.

        Parameters
        ----------
        out_dir : path
        n_traj, n_steps, start, start_latent, random_state, device, pipeline, progress
            As in :meth:`generate`; the same arguments give the same trajectories as there.
        fmt : {'dcd', 'xtc', 'h5'}
            Trajectory format (XTC is compressed to 0.001 nm).
        chunk_frames : int
            Frames decoded, held and written at once (rounded to whole segments of at most
            ``GROUP_TRAJ x SEGMENT_STEPS`` frames): the bound on memory beyond the fixed networks.
        prefix : str
            File name prefix.
        save_latent : bool
            Also write ``latent.npy``.
        overwrite : bool
            Replace an earlier generation in ``out_dir`` (else FileExistsError).

        Returns
        -------
        dict
            The content of ``generation.json`` (paths relative to ``out_dir``).
        """
        if fmt not in FORMATS:
            raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
        n_traj, n_steps, chunk_frames, seed = self._check_request(n_traj, n_steps, chunk_frames, random_state)
        x0 = self._start_points(n_traj, start, start_latent)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta_path = out / "generation.json"
        if meta_path.exists() and not overwrite:
            raise FileExistsError(f"{out} already holds a generation (generation.json); pass overwrite=True "
                                  f"(--overwrite) or choose another directory")
        meta_path.unlink(missing_ok=True)
        n_frames, m = n_steps + 1, self.n_components_
        width = max(3, len(str(n_traj - 1)))
        names = [f"{prefix}_{i:0{width}d}.{fmt}" for i in range(n_traj)]
        dt_ps = self.timestep_ps
        lat_file = lat_offset = None
        if save_latent:
            mm = np.lib.format.open_memmap(out / "latent.npy", mode="w+", dtype=np.float32, shape=(n_traj, n_frames, m))
            lat_offset = mm.offset
            del mm
            lat_file = open(out / "latent.npy", "r+b")
        writer = TrajectoryWriter([out / n for n in names], fmt, self.topology)
        pdb_written = [False]

        def sink(sl, blocks):
            f0 = blocks[0][0]
            lat = np.concatenate([b[1] for b in blocks], axis=1) if len(blocks) > 1 else blocks[0][1]
            xyz_blk = np.concatenate([b[2] for b in blocks], axis=1) if len(blocks) > 1 else blocks[0][2]
            k = lat.shape[1]
            t_ps = (np.arange(f0, f0 + k) * dt_ps).astype(np.float64)
            steps = np.arange(f0, f0 + k)
            for j, i in enumerate(range(sl.start, sl.stop)):
                writer.write(i, xyz_blk[j], t_ps, steps)
                if lat_file is not None:
                    lat_file.seek(lat_offset + (i * n_frames + f0) * m * 4)
                    lat_file.write(np.ascontiguousarray(lat[j], dtype=np.float32).tobytes())
            if not pdb_written[0]:
                md.Trajectory(xyz_blk[0, :1], self.topology).save_pdb(str(out / "topology.pdb"))
                pdb_written[0] = True

        tic = time.perf_counter()
        try:
            st = self._run(x0, n_steps, seed, device, True, chunk_frames, pipeline, progress, sink)
        finally:
            writer.close()
            if lat_file is not None:
                lat_file.close()
        total = time.perf_counter() - tic
        meta = {
            "format": GENERATION_FORMAT, "n_traj": n_traj, "n_steps": n_steps, "n_frames": n_frames,
            "n_atoms": self.n_atoms, "n_components": m, "trajectory_format": fmt, "files": names,
            "topology": "topology.pdb", "latent": "latent.npy" if save_latent else None,
            "timestep": self.timestep, "time_unit": self.time_unit, "timestep_ps": dt_ps,
            "lag": self.lag, "frame_time": self.frame_time,
            "time_note": ("frame t of every trajectory is at t * timestep; DCD files do not store it"
                          if fmt == "dcd" else "frame times (ps) are also stored in the trajectory files"),
            "seed": seed, "clipped_fraction": st["clipped"], "chunk_frames": chunk_frames,
            "n_chunks": len(st["chunks"]), "max_chunk_frames": max(st["chunks"]) if st["chunks"] else 0,
            "timings_s": {"total": total, "propagate": st["prop_s"], "decode": st["dec_s"],
                          "propagate_cpu": st["prop_cpu_s"], "decode_cpu": st["dec_cpu_s"]},
            "frames_per_s": n_traj * n_frames / total if total > 0 else None,
            "model": {"config": self.config, "data_fingerprint": self.data_fingerprint,
                      "checksum": self.checksum()},
            "versions": package_versions(), "mdtraj": md.__version__,
        }
        meta_path.write_text(json.dumps(meta, indent=1, default=str) + "\n")
        return meta

    # --------------------------------------------------------------------------- persistence
    def state(self) -> dict:
        """Everything needed to rebuild the simulator (torch-saveable)."""
        ref = getattr(self.decoder, "reference_", None)
        ref = ref if ref is not None and np.shape(ref) == (self.n_atoms, 3) else None
        return {
            "encoder": state_of(self.encoder, "encoder"),
            "propagator": state_of(self.propagator, "propagator"),
            "decoder": state_of(self.decoder, "decoder"),
            "topology": topology_to_dict(self.topology),
            "topology_pdb": pdb_text(self.topology, ref),
            "frame_time": self.frame_time, "time_unit": self.time_unit,
            "config": self.config, "data_fingerprint": self.data_fingerprint,
            "start_latent": self.start_latent,
        }

    @classmethod
    def from_state(cls, state: dict, path="<state>") -> "LatentSpaceSimulator":
        return cls(encoder=object_from(state["encoder"], "encoder", path),
                   propagator=object_from(state["propagator"], "propagator", path),
                   decoder=object_from(state["decoder"], "decoder", path),
                   topology=topology_from_dict(state["topology"]), frame_time=state["frame_time"],
                   time_unit=state["time_unit"], config=state["config"],
                   data_fingerprint=state["data_fingerprint"], start_latent=state["start_latent"])

    @classmethod
    def build_checked(cls, encoder, propagator, decoder, topology: md.Topology, frame_time: float, time_unit: str,
                      path, start_xyz=None, start_latent=None, srv=None, config: dict | None = None,
                      start_frames=None, data_fingerprint: str | None = None, device: str = "cpu",
                      random_state: int = 0, log=print) -> "LatentSpaceSimulator":
        """Build a simulator, save it, load it back and check the round trip; return the loaded one.

        The configuration stored in the file is ``config`` followed by the parameters of ``srv``,
        ``propagator`` and ``decoder`` (``progress`` left out) and ``start_frames``. Two checks, each
        an ``AssertionError`` when it fails: the loaded simulator's encoder reproduces ``start_latent``
        from ``start_xyz`` (max absolute difference < 1e-3; only with an encoder), and the built and the
        loaded simulator generate identical trajectories (2 x 50 steps) for ``random_state``.

        Parameters
        ----------
        encoder, propagator, decoder, topology, frame_time, time_unit, data_fingerprint
            As for :class:`LatentSpaceSimulator` (``encoder`` may be None: no encoding then).
        path : str or Path
            The simulator file (:meth:`save`).
        start_xyz : np.ndarray, shape (n_starts, n_atoms, 3), nm, optional
            Start structures; ``start_latent`` (n_starts, m) their latent points, the simulator's default
            starts.
        srv : lss.srv.SRV, optional
            The SRV behind the encoder (its parameters go into the configuration).
        config : dict, optional
            Provenance (profile, notebook, data source) put first in the configuration.
        start_frames : array-like of int, optional
            Indices of the start frames in the training data (recorded in the configuration).
        device : str
            Device of the loaded simulator.
        log : callable or None
            Where the description and the checks' results go (``print``).
        """
        params = lambda est: {k: v for k, v in est.get_params().items() if k != "progress"}  # noqa: E731
        config = dict(config or {}) | {"srv": params(srv) if srv is not None else None, "mdn": params(propagator),
                                       "decoder": {"class": type(decoder).__name__, **params(decoder)}}
        if start_frames is not None:
            config["start_frames"] = np.asarray(start_frames).tolist()
        built = cls(encoder, propagator, decoder, topology, frame_time=frame_time, time_unit=time_unit, config=config,
                    data_fingerprint=data_fingerprint, start_latent=start_latent)
        path = built.save(path)
        sim = cls.load(path, device=device)
        log = log or (lambda *a: None)
        log(sim)
        log(f"saved {path} ({path.stat().st_size / 2**20:.1f} MB); one step = {sim.timestep:g} {sim.time_unit} "
            f"({sim.timestep_ps:g} ps); data fingerprint {sim.data_fingerprint}")
        if encoder is not None and start_xyz is not None:
            enc_err = float(np.abs(sim.encode(md.Trajectory(np.asarray(start_xyz), topology)) - start_latent).max())
            log(f"start structures encoded by the simulator vs notebook 03's latent points: max difference {enc_err:.1e}")
            assert enc_err < 1e-3, "the simulator's encoder chain must reproduce the SRV coordinates of notebook 03"
        check, again = (s_.generate(2, 50, random_state=random_state) for s_ in (built, sim))
        assert np.array_equal(check.xyz, again.xyz), "the saved and reloaded simulator must generate the same trajectories"
        log("round trip: the reloaded simulator generates identical trajectories for the same seed")
        return sim

    def checksum(self) -> str:
        """SHA-256 of the simulator's content (networks, scalers, topology, configuration)."""
        return content_hash(self.state())

    def save(self, path) -> Path:
        """Write the simulator to one lss archive (parent folders are created; see :mod:`lss.persist`).

        The file holds the format tag ``lss.simulator/2``, the package versions (mdtraj included), a
        SHA-256 checksum of the content and the state; the networks keep their own format tags inside.
        """
        return write_state(path, self._format, self.state(), extra={"mdtraj": md.__version__})

    @classmethod
    def load(cls, path, device: str = "cpu") -> "LatentSpaceSimulator":
        """Read a file written by :meth:`save`; nothing in the file is run.

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            Not a simulator file (another format tag), a file of an earlier lss version (pickles
            included), a truncated or corrupt file (unreadable, or content not matching its checksum).
        """
        fmt, state, header = read_state(path, what="latent space simulator")
        if not fmt.startswith("lss.simulator/"):
            raise ValueError(f"{path}: not a latent space simulator file (format {fmt!r}, expected {_FORMAT!r}); "
                             f"it was written by another lss class or program")
        if fmt != _FORMAT:
            raise ValueError(f"{path}: simulator format {fmt!r} is not {_FORMAT!r}, the one this lss "
                             f"({package_versions()['lss']}) reads; it was written by another lss version "
                             f"({header.get('versions')}); retrain, or re-save it with the version that wrote it")
        try:
            sim = cls.from_state(state, path)
        except ValueError:
            raise
        except Exception as e:
            raise ValueError(f"{path}: cannot rebuild the simulator from the file ({type(e).__name__}: {e}); "
                             f"it is corrupt or from an incompatible lss version ({header.get('versions')})") from None
        sim.versions_ = dict(header.get("versions") or {}, mdtraj=header.get("mdtraj"))
        return sim.to(device)

    def to(self, device: str) -> "LatentSpaceSimulator":
        """Move all networks to ``device`` (and generate there by default)."""
        get_device(str(device))
        self.device = str(device)
        for est in (self.encoder, self.propagator, self.decoder):
            if est is not None and hasattr(est, "to"):
                est.to(self.device)
        return self

    def info(self) -> dict:
        """A JSON-able summary: sizes, time step, configuration, fingerprint, versions."""
        return {"n_components": self.n_components_, "n_atoms": self.n_atoms, "lag": self.lag,
                "frame_time": self.frame_time, "time_unit": self.time_unit, "timestep": self.timestep,
                "timestep_ps": self.timestep_ps,
                "encoder": repr(self.encoder) if self.encoder is not None else None,
                "propagator": type(self.propagator).__name__, "decoder": type(self.decoder).__name__,
                "featurizer": type(self.featurizer).__name__ if self.featurizer is not None else None,
                "scaler": type(self.scaler).__name__ if self.scaler is not None else None,
                "default_start_points": None if self.start_latent is None else len(self.start_latent),
                "data_fingerprint": self.data_fingerprint, "config": self.config,
                "versions": getattr(self, "versions_", None)}


def describe_generation(gen: dict, peak_mb: float | None = None) -> str:
    """What :meth:`LatentSpaceSimulator.generate_to_disk` wrote, in two lines: speed, chunks, memory, files.

    Parameters
    ----------
    gen : dict
        Its return value (``generation.json``).
    peak_mb : float, optional
        Peak resident memory while writing, MB.
    """
    mem = "" if peak_mb is None else f", peak RSS {peak_mb:,.0f} MB"
    return (f"to disk ({gen['trajectory_format']}): {gen['timings_s']['total']:.2f} s = {gen['frames_per_s']:,.0f} frames/s, "
            f"{gen['n_chunks']} chunks of at most {gen['max_chunk_frames']:,} frames{mem}\n"
            f"files: {gen['files'][0]} ... {gen['files'][-1]}, {gen['topology']}, {gen['latent']}, generation.json "
            f"(time step {gen['timestep']:g} {gen['time_unit']})")


def record_generation(rec, ens: GeneratedEnsemble, gen: dict, wall_s: float, peak_mb: float, paper_sized: bool,
                      md_seconds: float | None = None) -> None:
    """Record notebook 06's performance numbers through ``rec`` (:class:`lss.results.Recorder`).

    ``lss_generate_seconds`` (target <= 10 s) and ``lss_frames_per_second`` (>= 100,000) are assessed
    for the paper-sized ensemble only; then the frames, CPU seconds of propagation and decoding, the
    to-disk seconds, the peak memory (MB), the clipped fraction and, with ``md_seconds``, the MD
    equivalent and the speed-up. Descriptions: the metric catalog.

    Parameters
    ----------
    ens : GeneratedEnsemble
        The in-memory ensemble; ``gen`` what :meth:`LatentSpaceSimulator.generate_to_disk` returned.
    wall_s : float
        Wall seconds of the in-memory generation; ``peak_mb`` its peak resident memory.
    paper_sized : bool
        Whether the ensemble is at least the paper's (100 x 10,440 steps).
    md_seconds : float, optional
        Wall seconds of Go-model MD for the same trajectory time (:func:`lss.gomodel.md_cost`).
    """
    fps = ens.n_traj * ens.n_frames / wall_s
    rec("lss_generate_seconds", wall_s, target="<= 10 s for the paper-sized ensemble (2 CPU cores)" if paper_sized else None,
        met=bool(wall_s <= 10) if paper_sized else None)
    rec("lss_frames_per_second", fps, target=">= 100,000 for the paper-sized ensemble (2 CPU cores)" if paper_sized else None,
        met=bool(fps >= 100_000) if paper_sized else None)
    rec.many(lss_ensemble_frames=ens.n_traj * ens.n_frames,
             lss_cpu_seconds=[ens.timings["propagate_cpu_s"], ens.timings["decode_cpu_s"]],
             lss_to_disk_seconds=gen["timings_s"]["total"], lss_peak_memory_mb=peak_mb,
             lss_clipped_fraction=ens.clipped_fraction)
    if md_seconds is not None:
        rec.many(md_equivalent_seconds=md_seconds, md_over_lss_speedup=md_seconds / wall_s)
