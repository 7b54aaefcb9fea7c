"""Fixed bonds and angles of decoded chains: the joint projection, the angle quantile map, the decoders.

The projection is checked against exact answers (every constraint met, a single step equal to the
dense minimal-norm solve) and against other feasible chains (a rebuild from the internal coordinates,
and feasible neighbours of the projection), which must all lie farther from the decoded chain.
"""
import numpy as np
import pytest
import torch
from toys import apex_angle, bimodal_chain, bimodal_tv

from lss.decoder import angle_quantiles, quantile_map
from lss.flow import FlowDecoder
from lss.structure import (
    CHAIN_DENSE_FRAMES,
    bond_lengths,
    chain_angles,
    chain_constraints,
    project_chain,
    project_chain_,
    second_distances,
)

#: frame counts that take the two solvers of project_chain_: dense (batched Cholesky) and band (LDL^T)
DENSE, BAND = 4, CHAIN_DENSE_FRAMES + 172


# ------------------------------------------------------------------------------------- helpers
def _build(bonds, angles, torsions):
    """Chains (n, a, 3) nm from bonds (n, a-1) nm, angles (n, a-2) rad at atoms 1..a-2, torsions (n, a-3) rad."""
    n, a = len(bonds), bonds.shape[1] + 1
    x = np.zeros((n, a, 3))
    x[:, 1, 0] = bonds[:, 0]
    x[:, 2] = x[:, 1] + bonds[:, 1:2] * np.stack([-np.cos(angles[:, 0]), np.sin(angles[:, 0]), 0 * angles[:, 0]], 1)
    for i in range(3, a):
        b = x[:, i - 1] - x[:, i - 2]
        b /= np.linalg.norm(b, axis=-1, keepdims=True)
        nrm = np.cross(x[:, i - 2] - x[:, i - 3], b)
        nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
        th, ph = angles[:, i - 2], torsions[:, i - 3]
        step = (-np.cos(th))[:, None] * b + (np.sin(th) * np.cos(ph))[:, None] * np.cross(nrm, b) \
            + (np.sin(th) * np.sin(ph))[:, None] * nrm
        x[:, i] = x[:, i - 1] + bonds[:, i - 1:i] * step
    return x


def _torsions(x):
    b0, b1, b2 = x[:, 1:-2] - x[:, :-3], x[:, 2:-1] - x[:, 1:-2], x[:, 3:] - x[:, 2:-1]
    n1, n2 = np.cross(b0, b1), np.cross(b1, b2)
    m = np.cross(n1, b1 / np.linalg.norm(b1, axis=-1, keepdims=True))
    return np.arctan2((m * n2).sum(-1), (n1 * n2).sum(-1))


def _kabsch_each(x, ref):
    """Each frame of ``x`` optimally superposed on the same frame of ``ref`` (both (n, a, 3))."""
    xc, rc = x - x.mean(1, keepdims=True), ref - ref.mean(1, keepdims=True)
    u, _, vt = np.linalg.svd(np.einsum("nai,naj->nij", xc, rc))
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, 2] *= d[:, None]
    return xc @ (u @ vt) + ref.mean(1, keepdims=True)


def _decoded_like(n, a, rng, noise=0.02, shift=0.1):
    """MD-like chains (bonds 0.38 nm, angles 92 +/- 10 degrees), Cartesian noise as a decoder's, and
    targets: bonds 0.38 +/- 0.01 nm, the chain's angles moved by ``shift`` rad (sd)."""
    bonds = 0.38 + 0.01 * rng.standard_normal((n, a - 1))
    ang = np.deg2rad(92 + 10 * rng.standard_normal((n, a - 2)))
    x = _build(bonds, ang, rng.uniform(-np.pi, np.pi, (n, a - 3)))
    noisy = x + noise * rng.standard_normal(x.shape)
    t_bonds = 0.38 + 0.01 * rng.standard_normal((n, a - 1))
    t_ang = np.clip(ang + shift * rng.standard_normal(ang.shape), 1.0, 2.8)
    return noisy.astype(np.float32), t_bonds.astype(np.float32), t_ang.astype(np.float32)


# ----------------------------------------------------------------------------------- projection
def test_projection_meets_bonds_and_angles():
    rng = np.random.default_rng(0)
    noisy, b, ang = _decoded_like(1000, 20, rng)
    y, ok = project_chain(noisy, b, ang, n_iter=12)
    assert ok.all()
    assert np.abs(bond_lengths(y) - b).max() < 1e-4
    sec = second_distances(torch.as_tensor(b), torch.as_tensor(ang)).numpy()
    assert np.abs(np.linalg.norm(y[:, 2:] - y[:, :-2], axis=-1) - sec).max() < 1e-4
    assert np.abs(chain_angles(torch.as_tensor(y)).numpy() - ang).max() < 2e-3   # rad
    np.testing.assert_allclose(y.mean(1), noisy.mean(1), atol=1e-5)            # internal forces only


def _dense_step(x, target, damping=1e-6):
    """One Gauss-Newton step by a dense solve of (J J^T + damping) lam = -g, dx = J^T lam (float64)."""
    n_frames, a = x.shape[:2]
    pairs = np.array(chain_constraints(a)[0])                                  # the cached one is read-only
    jac = torch.zeros(n_frames, len(pairs), a, 3, dtype=x.dtype)
    for p, (i, j) in enumerate(pairs):
        e = x[:, j] - x[:, i]
        jac[:, p, j], jac[:, p, i] = e / e.norm(dim=-1, keepdim=True), -e / e.norm(dim=-1, keepdim=True)
    jac = jac.reshape(n_frames, len(pairs), -1)
    r = (x[:, pairs[:, 1]] - x[:, pairs[:, 0]]).norm(dim=-1)
    lam = torch.linalg.solve(jac @ jac.transpose(1, 2) + damping * torch.eye(len(pairs), dtype=x.dtype),
                             (target - r)[..., None])
    return x + (jac.transpose(1, 2) @ lam).reshape(x.shape)


def test_one_step_is_the_dense_minimal_norm_step():
    """With the band solver replaced by a dense solve of (J J^T) lam = -g, dx = J^T lam: the same step."""
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.standard_normal((4, 7, 3)))
    pairs, bw, _ = chain_constraints(7)
    assert bw == 4 and len(pairs) == 11
    pairs = np.array(pairs)
    r = (x[:, pairs[:, 1]] - x[:, pairs[:, 0]]).norm(dim=-1)
    target = r + 0.01 * torch.as_tensor(rng.standard_normal(r.shape))
    y = x.clone()
    project_chain_(y, target[:, 0::2], target[:, 1::2], n_iter=1, tol=0.0)
    torch.testing.assert_close(y, _dense_step(x, target), atol=1e-12, rtol=0)


@pytest.mark.parametrize("n_frames", [DENSE, BAND])
@pytest.mark.parametrize("n_atoms", [3, 4, 5, 6, 9, 20])
def test_both_solvers_take_the_dense_step(n_atoms, n_frames):
    """Both solvers of project_chain_ (dense for few frames, banded LDL^T with its structural zeros and
    signs for more) take the dense minimal-norm step, on chains of every length up to the paper's."""
    rng = np.random.default_rng(n_atoms)
    noisy, b, ang = (torch.as_tensor(v).double() for v in _decoded_like(n_frames, max(n_atoms, 4), rng))
    x, b, ang = noisy[:, :n_atoms].contiguous(), b[:, :n_atoms - 1], ang[:, :n_atoms - 2]
    target = torch.empty(n_frames, 2 * n_atoms - 3, dtype=x.dtype)
    target[:, 0::2], target[:, 1::2] = b, second_distances(b, ang)
    y = x.clone()
    project_chain_(y, target[:, 0::2], target[:, 1::2], n_iter=1, tol=0.0)
    torch.testing.assert_close(y, _dense_step(x, target), atol=1e-11, rtol=0)


def test_result_does_not_depend_on_the_batch():
    """A frame's projection is the same alone (dense solver), in a batch (band solver) and in a batch
    larger than one block; calls of other sizes in between (reused work arrays) change nothing."""
    import lss.structure as st

    rng = np.random.default_rng(6)
    noisy, b, ang = _decoded_like(BAND, 20, rng)
    sec = second_distances(torch.as_tensor(b), torch.as_tensor(ang))
    whole = torch.as_tensor(noisy.copy())
    ok = project_chain_(whole, torch.as_tensor(b), sec, n_iter=6, tol=1e-4, stop_early=False)
    assert ok.float().mean() > 0.9
    for i in (0, 1, BAND - 1):
        one = torch.as_tensor(noisy[i:i + 1].copy())
        ok1 = project_chain_(one, torch.as_tensor(b[i:i + 1]), sec[i:i + 1], n_iter=6, tol=1e-4, stop_early=False)
        assert bool(ok1[0]) == bool(ok[i])
        torch.testing.assert_close(one[0], whole[i], atol=2e-5, rtol=0)           # float32 round-off
    block = st.CHAIN_BLOCK
    try:
        st.CHAIN_BLOCK = 97                                                    # three blocks, one of them dense
        blocks = torch.as_tensor(noisy.copy())
        ok_b = project_chain_(blocks, torch.as_tensor(b), sec, n_iter=6, tol=1e-4, stop_early=False)
    finally:
        st.CHAIN_BLOCK = block
    assert (ok_b == ok).all()
    torch.testing.assert_close(blocks[ok], whole[ok], atol=2e-5, rtol=0)


def test_threads_do_not_share_work_arrays():
    """The decoders project in two threads at once (the simulator's pipeline): each has its own arrays."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(7)
    jobs = []
    for n in (BAND, BAND + 37, DENSE):
        noisy, b, ang = _decoded_like(n, 20, rng)
        jobs.append((noisy, torch.as_tensor(b), second_distances(torch.as_tensor(b), torch.as_tensor(ang))))

    def run(job):
        x = torch.as_tensor(job[0].copy())
        for _ in range(5):
            y = x.clone()
            project_chain_(y, job[1], job[2], n_iter=5, tol=1e-4, stop_early=False)
        return y

    alone = [run(j) for j in jobs]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(run, jobs * 2))
    for a, t in zip(alone * 2, together):
        torch.testing.assert_close(t, a, atol=0, rtol=0)


def test_projection_moves_less_than_other_feasible_chains():
    """Two kinds of chains with the same bonds and angles: the rebuild from the decoded torsions
    (superposed optimally on the decoded chain) and feasible neighbours of the projection. Both move the
    atoms farther than the projection: measured mean RMS displacement 0.043 nm (projection) against
    0.39 nm (rebuild, at least 5x more in every frame); 99 % of the neighbours are farther."""
    rng = np.random.default_rng(2)
    noisy, b, ang = _decoded_like(300, 20, rng)
    y, ok = project_chain(noisy, b, ang, n_iter=12)
    assert ok.all()
    rms = lambda z: np.sqrt(((z - noisy) ** 2).sum(-1).mean(-1))
    rebuilt = _kabsch_each(_build(b, ang, _torsions(noisy.astype(np.float64))), noisy)
    assert np.abs(bond_lengths(rebuilt) - b).max() < 1e-4                     # feasible
    assert (rms(y) < rms(rebuilt)).all() and rms(y).mean() < 0.3 * rms(rebuilt).mean()
    # neighbours: the projection pushed off by 0.01 nm and projected back onto the same constraints
    near, ok_n = project_chain(y + 0.01 * rng.standard_normal(y.shape).astype(np.float32), b, ang, n_iter=12)
    assert ok_n.all() and (rms(y) < rms(near)).mean() > 0.97


@pytest.mark.parametrize("n_frames", [50, BAND])
def test_projection_reports_what_it_cannot_meet(n_frames):
    """A chain asked for an i, i+2 distance longer than its two bonds cannot converge: reported, finite."""
    rng = np.random.default_rng(3)
    noisy, b, ang = _decoded_like(n_frames, 6, rng)
    x = torch.as_tensor(noisy.copy())
    sec = second_distances(torch.as_tensor(b), torch.as_tensor(ang))
    sec[:10, 1] = 0.9                                                          # > 2 x 0.38 nm
    ok = project_chain_(x, torch.as_tensor(b), sec, n_iter=8, tol=1e-4)
    assert not ok[:10].any() and ok[10:].all()


# --------------------------------------------------------------------------------- quantile map
def test_quantile_map_is_the_identity_for_equal_distributions():
    rng = np.random.default_rng(4)
    q = np.quantile(rng.normal(1.6, 0.2, (5000, 3)), np.linspace(0, 1, 101), axis=0).T
    v = rng.normal(1.6, 0.2, (2000, 3))
    inside = (v > q[:, 0]) & (v < q[:, -1])
    out = quantile_map(torch.as_tensor(v), torch.as_tensor(q), torch.as_tensor(q)).numpy()
    np.testing.assert_allclose(out[inside], v[inside], atol=1e-12)


def test_quantile_map_puts_a_broad_distribution_onto_md():
    """Decoded angles twice too broad and skewed map onto MD's (per-column KS distance below 0.03 on
    fresh draws, 20,000 each; measured 0.005-0.012), in the same order."""
    from scipy.stats import kstest, spearmanr

    rng = np.random.default_rng(5)
    levels = np.linspace(0, 1, 101)
    mu = np.array([1.5, 1.6, 1.9])
    md = lambda n: mu + 0.17 * rng.standard_normal((n, 3))
    dec = lambda n: mu + 0.35 * rng.standard_normal((n, 3)) + 0.1 * rng.exponential(1, (n, 3))
    q_md, q_dec = (np.quantile(f(50_000), levels, axis=0).T for f in (md, dec))
    v = dec(20_000)
    out = quantile_map(torch.as_tensor(v), torch.as_tensor(q_dec), torch.as_tensor(q_md)).numpy()
    ref = md(20_000)
    for j in range(3):
        assert kstest(out[:, j], ref[:, j]).statistic < 0.03
        assert spearmanr(out[:, j], v[:, j]).statistic > 0.999


# ------------------------------------------------------------------------------------- decoders
@pytest.fixture(scope="module")
def broad():
    """A flow decoder trained too little on the bimodal toy (3 atoms): its apex angle comes out broad."""
    xyz, c = bimodal_chain(4000, np.random.default_rng(0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return FlowDecoder(transforms=2, hidden=(16,), max_epochs=3, random_state=0).fit(xyz, c), xyz, c
    finally:
        torch.set_num_threads(threads)


def test_fixed_angles_give_the_training_angle_spread(broad):
    """Without fixed angles this decoder's apex-angle sd is 15 % above the data's; with them, within 10 %
    (measured 0.441 and 0.383 rad against 0.384), and the bimodal scores (TV of the conditional
    histograms) are no worse (measured: mean 0.59 without, 0.34 with)."""
    flow, xyz, c = broad
    assert flow.angle_quantiles_md_.shape == flow.angle_quantiles_decoded_.shape == (1, 101)
    sd_md = apex_angle(xyz).std()
    out = {}
    for on in (False, True):
        flow.set_params(fixed_angles=on)
        y = flow.generate(c, random_state=1)
        out[on] = apex_angle(y).std(), [bimodal_tv(flow, c0)[0] for c0 in (-0.6, 0.0, 0.6)]
        b = bond_lengths(y)
        np.testing.assert_allclose(b.mean(0), bond_lengths(xyz).mean(0), atol=1e-3)
    flow.set_params(fixed_angles=True)
    assert abs(out[False][0] / sd_md - 1) > 0.12           # the defect is there
    assert abs(out[True][0] / sd_md - 1) < 0.1             # and mended
    assert np.mean(out[True][1]) <= np.mean(out[False][1]) + 0.01
    assert flow.angle_fallbacks_ == 0


def test_tables_saved_and_old_files_load_bonds_only(broad, tmp_path):
    flow, _, c = broad
    loaded = FlowDecoder.load(flow.save(tmp_path / "flow.lss"))
    np.testing.assert_array_equal(loaded.angle_quantiles_md_, flow.angle_quantiles_md_)
    np.testing.assert_array_equal(flow.generate(c[:500], random_state=3), loaded.generate(c[:500], random_state=3))
    # a file written before fixed_angles: no tables, no parameter -> bonds only
    state = flow.state()
    del state["angle_quantiles_md"], state["angle_quantiles_decoded"]
    state["params"] = {k: v for k, v in state["params"].items() if k != "fixed_angles"}
    old = FlowDecoder.from_state(state)
    assert old.fixed_angles and old.angle_quantiles_md_ is None
    flow.set_params(fixed_angles=False)
    try:
        np.testing.assert_array_equal(old.generate(c[:500], random_state=3), flow.generate(c[:500], random_state=3))
    finally:
        flow.set_params(fixed_angles=True)


def test_angle_quantiles_of_md_frames(broad):
    _, xyz, _ = broad
    q = angle_quantiles(xyz)
    np.testing.assert_allclose(q[0], np.quantile(apex_angle(xyz), np.linspace(0, 1, 101)), atol=1e-5)


def test_sorted_brackets_are_searchsorted():
    """The grid search of the quantile map finds the binary search's indices: ties, plateaus of equal
    quantiles, values on and next to the quantiles, outside the range, a constant row."""
    from lss.decoder import sorted_brackets

    rng = np.random.default_rng(8)
    q = np.sort(rng.normal(1.6, 0.2, (4, 101)), axis=1)
    q[1, 30:70] = q[1, 50]                                                     # a plateau
    q[2] = np.round(q[2], 2)                                                   # ties everywhere
    q[3] = 1.0                                                                 # one value
    q = torch.as_tensor(q, dtype=torch.float32)
    v = torch.cat([torch.as_tensor(rng.normal(1.6, 0.3, (4, 5000)), dtype=torch.float32),
                   q, q - 1e-6, q + 1e-6, q.nextafter(q - 1), q.nextafter(q + 1), q[:, :1] - 5, q[:, -1:] + 5], 1)
    for cells in (7, 2048):
        np.testing.assert_array_equal(sorted_brackets(q, v.clone(), cells).numpy(), torch.searchsorted(q, v).numpy())
