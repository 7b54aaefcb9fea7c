"""The generation pipeline of the latent space simulator: propagation and decoding, seeded per segment.

Randomness is drawn per *segment* of :data:`SEGMENT_STEPS` lag steps of a *group* of up to
:data:`GROUP_TRAJ` trajectories, from seeds derived from the request's seed with
``numpy.random.SeedSequence(seed, spawn_key=(group, segment))``, so the trajectories do not depend on
how the segments are chunked or which thread decodes them.

The parts: :class:`SegmentGenerator` (propagation, seeded per segment), :class:`DecodeWorker`
(decoding, one per thread), :class:`ChunkAssembler` (in-order chunks for the output) and
:func:`run_pipelined` (propagation in a worker thread beside the decoding). Used by
:class:`lss.simulator.LatentSpaceSimulator`.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

#: Lag steps per seeded segment of propagation and decoding.
SEGMENT_STEPS = 100
#: Trajectories per seeded group (propagated together, one network call per step for the group).
GROUP_TRAJ = 1024
#: Frames per decoder call: large enough for efficient matrix products, small enough to stay in cache
#: (a decoder may ask for another size with a ``decode_batch`` attribute).
DECODE_BATCH = 2048


def _segment_seeds(seed: int, group: int, segment: int) -> tuple[int, int]:
    """(propagation seed, decoding seed) of one segment of one group."""
    s = np.random.SeedSequence(seed, spawn_key=(group, segment)).generate_state(2, dtype=np.uint32)
    return int(s[0]), int(s[1])


@dataclass
class Segment:
    """One propagated segment of one group of trajectories (up to ``SEGMENT_STEPS`` lag steps).

    Attributes
    ----------
    seq : int
        Position in the generation order (group by group, segment by segment).
    group, segment : int
        Indices that seed the segment (:func:`_segment_seeds`).
    rows : slice
        Trajectories of the group.
    frame_start : int
        Frame of ``latent[:, 0]`` in the trajectories (0 for the first segment, which includes the start).
    latent : np.ndarray, shape (n_group, k, m), float32
    xyz : np.ndarray, shape (n_group, k, n_atoms, 3), float32, nm, or None until decoded
    """

    seq: int
    group: int
    segment: int
    rows: slice
    frame_start: int
    latent: np.ndarray
    xyz: np.ndarray | None = None


class SegmentGenerator:
    """Propagates every group of trajectories segment by segment, in order, with per-segment seeds.

    Iterating yields :class:`Segment` objects (undecoded). The seeds depend only on the seed, the
    group and the segment, so the trajectories do not depend on how segments are later chunked.
    """

    def __init__(self, propagator, x0: np.ndarray, n_steps: int, seed: int, device, single_thread: bool):
        self.propagator, self.x0, self.n_steps, self.seed = propagator, x0, n_steps, seed
        self.device, self.threads = str(device), (1 if single_thread else None)
        self.groups = [(g0, min(g0 + GROUP_TRAJ, len(x0))) for g0 in range(0, len(x0), GROUP_TRAJ)]
        self.n_segments = max(1, -(-n_steps // SEGMENT_STEPS))
        self.clipped = 0.0                 # clipped fraction x coordinates, summed
        self.n_propagated = 0
        self.wall_s = self.cpu_s = 0.0

    def __len__(self) -> int:
        return len(self.groups) * self.n_segments

    @property
    def clipped_fraction(self) -> float:
        return self.clipped / self.n_propagated if self.n_propagated else 0.0

    def __iter__(self) -> Iterator[Segment]:
        seq = 0
        for gi, (g0, g1) in enumerate(self.groups):
            x = self.x0[g0:g1]
            for s in range(self.n_segments):
                t0 = s * SEGMENT_STEPS
                k = min(SEGMENT_STEPS, self.n_steps - t0)
                tic, cpu = time.perf_counter(), time.thread_time()
                if k > 0:
                    lat = self.propagator.sample(x, k, random_state=_segment_seeds(self.seed, gi, s)[0],
                                                 device=self.device, threads=self.threads)
                    self.clipped += getattr(self.propagator, "clipped_fraction_", 0.0) * (g1 - g0) * k
                    self.n_propagated += (g1 - g0) * k
                    x = lat[:, -1]
                else:
                    lat = x[:, None, :].astype(np.float32)
                self.wall_s += time.perf_counter() - tic
                self.cpu_s += time.thread_time() - cpu
                yield Segment(seq, gi, s, slice(g0, g1), 0 if s == 0 else t0 + 1,
                              np.ascontiguousarray(lat if s == 0 else lat[:, 1:]))
                seq += 1


class DecodeWorker:
    """Decodes segments with one decoder (one per thread), seeded per segment; keeps its own timings."""

    def __init__(self, decoder, seed: int, device, n_atoms: int):
        self.decoder, self.seed, self.device, self.n_atoms = decoder, seed, str(device), n_atoms
        self.wall_s = self.cpu_s = 0.0

    def __call__(self, seg: Segment) -> Segment:
        tic, cpu = time.perf_counter(), time.thread_time()
        n_g, k, m = seg.latent.shape
        seg.xyz = self.decoder.generate(seg.latent.reshape(-1, m), random_state=_segment_seeds(self.seed, seg.group,
                                                                                                seg.segment)[1],
                                        batch_size=getattr(self.decoder, "decode_batch", DECODE_BATCH), device=self.device).reshape(n_g, k, self.n_atoms, 3)
        self.wall_s += time.perf_counter() - tic
        self.cpu_s += time.thread_time() - cpu
        return seg


class ChunkAssembler:
    """Collects segments in order and hands them to ``sink`` a chunk at a time.

    ``sink(rows, blocks)`` gets consecutive blocks ``(frame_start, latent (n_g, k, m), xyz (n_g, k,
    n_atoms, 3) or None)`` of one group, at most ``per_chunk`` segments (at least one).
    """

    def __init__(self, sink, per_chunk: int, bar=None):
        self.sink, self.per_chunk, self.bar = sink, per_chunk, bar
        self.pending: list[Segment] = []
        self.chunks: list[int] = []

    def add(self, seg: Segment):
        if self.pending and (self.pending[0].group != seg.group or len(self.pending) >= self.per_chunk):
            self.flush()
        self.pending.append(seg)

    def flush(self):
        if not self.pending:
            return
        blocks = [(s.frame_start, s.latent, s.xyz) for s in self.pending]
        self.sink(self.pending[0].rows, blocks)
        n = int(sum(b[1].shape[0] * b[1].shape[1] for b in blocks))
        self.chunks.append(n)
        if self.bar is not None:
            self.bar.update(n)
        self.pending.clear()


def run_pipelined(segments: SegmentGenerator, decode_main: DecodeWorker, decode_helper: DecodeWorker,
                  assemble: ChunkAssembler):
    """Propagate in a worker thread while the calling thread decodes; hand segments to ``assemble`` in order.

    The worker puts propagated segments on a small queue; whenever the queue is full (decoding is
    the slower stage), and once the propagation is done, it decodes from the queue too (with its own
    decoder copy, ``decode_helper``), so both cores stay busy. Segments decoded out of order wait in
    a dict until their turn; each segment's noise is seeded by its index, so the order of decoding
    does not change the result.
    """
    q: queue.Queue = queue.Queue(maxsize=4)
    done: dict[int, Segment] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    stop = threading.Event()

    def decode_one() -> bool:
        """Decode one queued segment in the worker thread (False when the queue is empty)."""
        try:
            seg = q.get_nowait()
        except queue.Empty:
            return False
        decode_helper(seg)
        with lock:
            done[seg.seq] = seg
        return True

    def put(seg) -> bool:
        # when decoding is the slower stage the queue fills up: rather than wait, the worker decodes
        # a queued segment itself (measured with the flow decoder, 1e6 frames: 12.9 s -> see the benchmark)
        while not stop.is_set():
            try:
                q.put_nowait(seg)
                return True
            except queue.Full:
                if not decode_one():
                    time.sleep(0.001)
        return False

    def work():
        try:
            with torch.inference_mode():
                for seg in segments:
                    if not put(seg):
                        return
                while not stop.is_set() and decode_one():   # then help decoding to the end
                    pass
        except BaseException as e:  # re-raised in the calling thread
            errors.append(e)

    worker = threading.Thread(target=work, name="lss-propagate", daemon=True)
    worker.start()
    try:
        next_seq, total = 0, len(segments)
        while next_seq < total:
            if errors:
                raise errors[0]
            with lock:
                ready = done.pop(next_seq, None)
            if ready is not None:
                assemble.add(ready)
                next_seq += 1
                continue
            try:
                seg = q.get(timeout=0.01)
            except queue.Empty:
                if not worker.is_alive() and q.empty():
                    with lock:
                        missing = next_seq not in done
                    if missing:
                        if errors:
                            raise errors[0]
                        raise RuntimeError("the propagation worker ended before all segments were made")
                continue
            decode_main(seg)
            with lock:
                done[seg.seq] = seg
        assemble.flush()
    finally:
        stop.set()
        worker.join(timeout=60)
