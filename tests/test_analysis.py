"""lss.analysis against known answers: densities, AR(1) relaxation, mdtraj geometry, TICA, Markov chains."""
import math

import mdtraj as md
import numpy as np
import pytest
from scipy.signal import lfilter
from scipy.stats import norm

from lss import analysis as A
from lss import kinetics, msm, stats, structure


def ar1(n, t, rng, sigma=1.0):
    """Stationary AR(1) of n frames with autocorrelation exactly exp(-lag / t) and variance sigma^2."""
    phi = math.exp(-1.0 / t)
    xi = rng.standard_normal(n) * sigma * math.sqrt(1 - phi**2)
    xi[0] = rng.standard_normal() * sigma
    return lfilter([1.0], [1.0, -phi], xi)


def reversible_T():
    C = np.array([[480.0, 10.0, 2.0], [10.0, 290.0, 8.0], [2.0, 8.0, 200.0]])  # symmetric flux
    return C / C.sum(1, keepdims=True)


def exact_timescales(T, k):
    ev = np.sort(np.abs(np.linalg.eigvals(T)))[::-1]
    return -1.0 / np.log(ev[1:k + 1])


def chain(T, n, seed):
    from deeptime.markov.msm import MarkovStateModel

    return MarkovStateModel(T).simulate(n, start=0, seed=seed)


# ---------------------------------------------------------------------------------------- blocks
def test_split_blocks_keeps_order_and_trajectory_boundaries():
    trajs = [np.arange(7), np.arange(100, 103), np.arange(200, 210)]
    blocks = stats.split_blocks(trajs, 4)
    assert len(blocks) == 4
    flat = np.concatenate([np.concatenate(b) for b in blocks])
    np.testing.assert_array_equal(flat, np.concatenate(trajs))
    assert [sum(len(p) for p in b) for b in blocks] == [5, 5, 5, 5]
    assert [len(b) for b in blocks] == [1, 2, 1, 1]  # block 1: the end of traj 0, then all of traj 1
    with pytest.raises(ValueError, match="n_blocks"):
        stats.split_blocks(trajs, 1)


def test_block_average_sees_time_correlation():
    rng = np.random.default_rng(0)
    n, t = 200_000, 20.0
    x = ar1(n, t, rng)
    mean, err = stats.block_average(x, n_blocks=5)
    phi = math.exp(-1 / t)
    true_err = math.sqrt((1 + phi) / (1 - phi) / n)  # standard error of the mean of an AR(1)
    assert abs(mean) < 4 * true_err
    assert 0.3 < err / true_err < 2.0, (err, true_err)
    assert err > 2.5 / math.sqrt(n)  # far above the naive iid error
    # a list is concatenated in order; (n, k) is column by column
    m2, e2 = stats.block_average([x[:1000], x[1000:]])
    assert m2 == pytest.approx(mean) and e2 == pytest.approx(err)
    mk, ek = stats.block_average(np.stack([x, 2 * x], 1))
    np.testing.assert_allclose(mk, [mean, 2 * mean])
    np.testing.assert_allclose(ek, [err, 2 * err])


# ---------------------------------------------------------------------------------- free energy
def _mixture_samples(n, rng):
    comp = rng.random(n) < 0.7
    return np.where(comp, rng.normal(-1.0, 0.4, n), rng.normal(1.2, 0.5, n))


def _mixture_bin_F(edges):
    cdf = 0.7 * norm.cdf(edges, -1.0, 0.4) + 0.3 * norm.cdf(edges, 1.2, 0.5)
    return -np.log(np.diff(cdf) / np.diff(edges))


def test_free_energy_profile_matches_exact_within_block_errors():
    rng = np.random.default_rng(1)
    x = _mixture_samples(200_000, rng)
    edges = np.linspace(-2.5, 3.0, 45)
    c, F, F_err = A.free_energy_profile(x, edges, kT=1.0, n_blocks=5)
    exact = _mixture_bin_F(edges)
    np.testing.assert_allclose(c, 0.5 * (edges[1:] + edges[:-1]))
    ok = np.isfinite(F)
    assert ok.sum() >= 40
    z = (F - exact)[ok] / F_err[ok]
    assert np.mean(np.abs(z) < 4) >= 0.95, z
    assert 0.3 < np.mean(z**2) < 3.0  # errors are the right size, not just large
    assert A.aligned_rmse(F, exact) < 0.1
    # 4x the data: errors about 2x smaller (the paper's LSS/MD error-bar ratio argument)
    _, F4, F4_err = A.free_energy_profile([x, _mixture_samples(600_000, rng)], edges)
    both = ok & np.isfinite(F4)
    assert 0.35 < np.median(F4_err[both] / F_err[both]) < 0.7
    # kT scales F and its error; weights of 2 everywhere change nothing
    _, F2, E2 = A.free_energy_profile(x, edges, kT=2.5)
    np.testing.assert_allclose(F2[ok], 2.5 * F[ok])
    np.testing.assert_allclose(E2[ok], 2.5 * F_err[ok])
    _, Fw, _ = A.free_energy_profile(x, edges, weights=np.full(len(x), 2.0))
    np.testing.assert_allclose(Fw[ok], F[ok])


def test_free_energy_profile_rejects_ambiguous_input():
    with pytest.raises(ValueError, match="x"):
        A.free_energy_profile(np.zeros((100, 3)), 10)
    with pytest.raises(ValueError, match="kT"):
        A.free_energy_profile(np.zeros(100), 10, kT=0)


def test_aligned_rmse_and_sampled_region():
    rng = np.random.default_rng(2)
    F = rng.normal(size=30) ** 2
    assert A.aligned_rmse(F, F + 3.7) == pytest.approx(0.0, abs=1e-12)
    r, shift = A.aligned_rmse(F + 3.7, F, return_shift=True)
    assert shift == pytest.approx(3.7) and r == pytest.approx(0.0, abs=1e-12)
    noisy = F - 2.0 + rng.normal(0, 0.1, 30)
    assert 0.06 < A.aligned_rmse(F, noisy) < 0.14
    G = F.copy()
    G[:5] = np.nan  # unsampled bins of one profile are skipped
    G[5] += 10.0
    mask = np.ones(30, bool)
    mask[5] = False
    assert A.aligned_rmse(F, G + 1, mask=mask) == pytest.approx(0.0, abs=1e-12)
    assert A.aligned_rmse(F - F.min(), F + 5.0 - F.min(), align="min") == pytest.approx(0.0, abs=1e-12)
    reg = A.sampled_region(np.array([np.nan, 3.0, 0.5, 1.0, 9.0]), max_dF=4.0)
    np.testing.assert_array_equal(reg, [False, True, True, True, False])
    with pytest.raises(ValueError, match="no finite"):
        A.aligned_rmse(np.full(3, np.nan), np.zeros(3))


def test_free_energy_2d_of_a_gaussian():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1.0, 300_000), rng.normal(0, 0.5, 300_000)
    ca, cb, F = A.free_energy_2d(a, b, bins=(np.linspace(-2, 2, 21), np.linspace(-1, 1, 21)))
    assert F.shape == (20, 20)
    exact = 0.5 * ca[:, None] ** 2 + 0.5 * (cb[None, :] / 0.5) ** 2
    assert A.aligned_rmse(F, exact) < 0.1


# -------------------------------------------------------------------------------------- kinetics
def test_autocorrelation_of_ar1_is_exponential():
    rng = np.random.default_rng(4)
    x = ar1(100_000, 10.0, rng)
    c = kinetics.autocorrelation(x, 30)
    assert c.shape == (31,) and c[0] == pytest.approx(1.0)
    np.testing.assert_allclose(c, np.exp(-np.arange(31) / 10.0), atol=0.03)
    # pairs never join trajectories: two halves with opposite offsets give the same decay
    c2 = kinetics.autocorrelation([x[:50_000] + 0.0, x[50_000:]], 30)
    np.testing.assert_allclose(c2, c, atol=0.01)
    cm = kinetics.autocorrelation(np.stack([x, -x], 1), 30)
    assert cm.shape == (31, 2)
    np.testing.assert_allclose(cm[:, 1], c)


def test_relaxation_times_of_ar1_modes_with_block_errors():
    rng = np.random.default_rng(5)
    t_true = np.array([30.0, 8.0, 2.0])
    X = np.stack([ar1(300_000, t, rng) for t in t_true], 1)
    t, err, tk = kinetics.relaxation_times(X, max_lag=150, frame_time=1.0, n_blocks=5, return_blocks=True)
    assert tk.shape == (5, 3)
    np.testing.assert_allclose(t, t_true, rtol=0.05)
    assert np.all(np.abs(t - t_true) < 4 * err + 0.01 * t_true)
    rel = err / t
    assert np.all(rel > 0.001) and np.all(rel < 0.08), rel
    # frame_time sets the unit; a stack (n_traj, n_frames, m) is a list of trajectories
    t2, _ = kinetics.relaxation_times(X, 150, frame_time=0.5, n_blocks=None)
    np.testing.assert_allclose(t2, 0.5 * t)
    ts, es = kinetics.relaxation_times(X.reshape(3, 100_000, 3), 150)
    np.testing.assert_allclose(ts, t_true, rtol=0.06)
    with pytest.raises(ValueError, match="max_lag"):
        kinetics.relaxation_times(X[:1000], 500, n_blocks=5)


def test_relaxation_time_fit_options():
    lags = np.arange(60)
    acf = 0.8 * np.exp(-lags / 12.0)
    assert kinetics.relaxation_time(acf, amplitude=True) == pytest.approx(12.0, rel=1e-3)
    assert kinetics.relaxation_time(np.exp(-lags / 12.0), dt=2.0) == pytest.approx(24.0, rel=1e-3)
    assert kinetics.relaxation_time(np.exp(-lags / 12.0), fit_range=(5, 40)) == pytest.approx(12.0, rel=1e-3)
    with pytest.warns(RuntimeWarning, match="max_lag"):
        kinetics.relaxation_time(np.exp(-lags[:5] / 12.0))


def test_relaxation_times_on_a_coarser_lag_grid():
    rng = np.random.default_rng(6)
    x = ar1(200_000, 30.0, rng)
    t, _ = kinetics.relaxation_times(x, max_lag=120, n_blocks=None, lag_step=10)
    assert t[0] == pytest.approx(30.0, rel=0.06)
    # the same as fitting every 10th lag of the full autocorrelation, with 10 frames per point
    c = kinetics.autocorrelation(x, 120)
    assert t[0] == pytest.approx(kinetics.relaxation_time(c[::10], dt=10.0), rel=1e-9)
    # a fast component the coarse grid cannot resolve: MD fitted on the LSS grid sees it as the LSS does
    fast = ar1(200_000, 1.0, rng)
    y = np.sqrt(0.8) * x + np.sqrt(0.2) * fast  # C(lag) = 0.8 exp(-lag/30) + 0.2 exp(-lag)
    t_fine = kinetics.relaxation_times(y, 120, n_blocks=None)[0][0]
    t_coarse = kinetics.relaxation_times(y, 120, n_blocks=None, lag_step=10)[0][0]
    t_lss_like = kinetics.relaxation_times(y[::10], 12, frame_time=10.0, n_blocks=None)[0][0]
    assert t_fine < t_coarse < 30.0  # the fast decay drags both fits down, the fine grid more
    assert t_coarse == pytest.approx(t_lss_like, rel=0.05)
    with pytest.raises(ValueError, match="lag_step"):
        kinetics.relaxation_times(x, 120, lag_step=0)
    with pytest.raises(ValueError, match="lag_step"):
        kinetics.relaxation_times(x, 120, lag_step=121)


# ------------------------------------------------------------------------------------- structure
def _random_chain(rng, n_frames=12, n_atoms=20):
    steps = rng.normal(size=(n_frames, n_atoms, 3))
    steps *= 0.38 / np.linalg.norm(steps, axis=2, keepdims=True)
    return np.cumsum(steps, axis=1).astype(np.float32)


def _rotate(xyz, rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    return (xyz @ q.T + rng.normal(size=3)).astype(np.float32)


def test_rg_and_rmsd_equal_mdtraj():
    from lss.gomodel import native_structure

    rng = np.random.default_rng(6)
    xyz = _random_chain(rng)
    top = native_structure().topology
    traj = md.Trajectory(xyz, top)
    np.testing.assert_allclose(structure.radius_of_gyration(xyz), md.compute_rg(traj), rtol=1e-5)
    np.testing.assert_allclose(structure.radius_of_gyration([traj[:5], xyz[5:]]), md.compute_rg(traj), rtol=1e-5)
    ref = xyz[3]
    np.testing.assert_allclose(structure.rmsd_to_reference(xyz, ref), md.rmsd(traj, traj, 3), atol=1e-5)
    # superposition: a rotated, translated copy has zero RMSD
    assert np.all(structure.rmsd_to_reference(_rotate(xyz, rng), xyz[3:4])[3] < 1e-3)
    with pytest.raises(ValueError, match="xyz"):
        structure.radius_of_gyration(np.zeros((4, 20, 2)))


def test_ensemble_rmsd_pairs_like_mdtraj():
    rng = np.random.default_rng(7)
    a, b = _random_chain(rng, 8), _rotate(_random_chain(rng, 6), rng)
    got = structure.ensemble_rmsd(a, b, n_pairs=50, rng=0, return_all=True)
    g = np.random.default_rng(0)
    i, j = g.integers(8, size=50), g.integers(6, size=50)
    top = structure._ca_topology(20)
    want = [md.rmsd(md.Trajectory(a[p], top), md.Trajectory(b[q], top))[0] for p, q in zip(i, j)]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert structure.ensemble_rmsd(a[:1], _rotate(a[:1], rng), n_pairs=5) < 1e-3
    # a mirror image cannot be superposed by a rotation (reflection correction): exact against
    # scipy's optimal rotation; mdtraj's float32 QCP is measured up to 2e-4 nm off here
    from scipy.spatial.transform import Rotation

    mirror = a * np.array([1, 1, -1], dtype=np.float32)
    got = structure.pair_rmsd(mirror, a)
    exact = []
    for k in range(8):
        x, y = mirror[k] - mirror[k].mean(0), a[k] - a[k].mean(0)
        R, _ = Rotation.align_vectors(y.astype(float), x.astype(float))
        exact.append(np.sqrt(((R.apply(x) - y) ** 2).sum(1).mean()))
    np.testing.assert_allclose(got, exact, atol=1e-6)
    want = [md.rmsd(md.Trajectory(mirror[k], top), md.Trajectory(a[k], top))[0] for k in range(8)]
    np.testing.assert_allclose(got, want, atol=1e-3)
    assert np.all(got > 0.05)


def test_ca_distances_equal_mdtraj():
    from lss.features import CAFeaturizer

    rng = np.random.default_rng(7)
    xyz = _random_chain(rng, n_frames=25)
    d = structure.ca_distances(xyz, chunk=7)
    assert d.shape == (25, 190) and d.dtype == np.float32
    pairs = np.array(np.triu_indices(20, k=1)).T
    ref = md.compute_distances(md.Trajectory(xyz, structure._ca_topology(20)), pairs, periodic=False)
    np.testing.assert_allclose(d, ref, rtol=1e-5)
    d3 = structure.ca_distances(list(xyz[None]), min_separation=3)
    np.testing.assert_allclose(d3, CAFeaturizer().transform(xyz)[:, :153], rtol=1e-5)
    with pytest.raises(ValueError, match="min_separation"):
        structure.ca_distances(xyz, min_separation=20)


def test_select_region():
    lat = [np.array([[0.0, 1], [0.4, 1], [0.46, 2]]), np.array([[0.5, 0], [0.9, 0]])]
    np.testing.assert_array_equal(A.select_region(lat, 0.45, 0.1), [False, True, True, True, False])
    np.testing.assert_array_equal(A.select_region(lat, 0.0, 0.5, dim=1), [False, False, False, True, True])


# ------------------------------------------------------------------------------------------- TICA
def test_tica_finds_the_slow_direction():
    rng = np.random.default_rng(8)
    n = 60_000
    slow, fast, noise = ar1(n, 100.0, rng), ar1(n, 1.0, rng, 3.0), rng.normal(0, 2.0, n)
    R, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    X = np.stack([slow, fast, noise], 1) @ R.T  # the slow direction has the least variance
    model = A.fit_tica([X[:30_000], X[30_000:]], lag=10, dim=2)
    strided = A.fit_tica(X, lag=10, dim=1, stride=3, chunksize=7000)
    assert abs(np.corrcoef(A.project(strided, X)[:, 0], slow)[0, 1]) > 0.98
    Y = A.project(model, X)
    assert Y.shape == (n, 2)
    assert abs(np.corrcoef(Y[:, 0], slow)[0, 1]) > 0.98
    assert model.singular_values[0] == pytest.approx(math.exp(-10 / 100), abs=0.03)
    parts = A.project(model, [X[:10], X[10:20]])
    assert isinstance(parts, list) and parts[1].shape == (10, 2)


# ------------------------------------------------------------------------------------ transitions
def test_count_transitions_core_to_core():
    sig = np.array([0.2, 0.5, 0.2, 0.9, 0.6, 0.95, 0.5, 0.1, 0.5, 0.3, 0.95])
    assert kinetics.count_transitions(sig, 0.45, 0.85) == 3
    assert kinetics.count_transitions(np.r_[0.6, sig], 0.45, 0.85) == 3  # a start in the gap counts nothing
    # never across the join of two trajectories
    assert kinetics.count_transitions([sig[:3], sig[3:]], 0.45, 0.85) == 2
    np.testing.assert_array_equal(kinetics.count_transitions([sig[:3], sig[3:]], 0.45, 0.85, per_trajectory=True), [0, 2])
    # barrier-top cutoffs count recrossings
    assert kinetics.count_transitions(np.array([0.2, 0.72, 0.68, 0.73, 0.2]), 0.45, 0.85) == 0
    assert kinetics.count_transitions(np.array([0.2, 0.72, 0.68, 0.73, 0.2]), 0.69, 0.71) == 4
    assert kinetics.transitions_per_frames(1070, 100_000, per=1000) == pytest.approx(10.7)
    with pytest.raises(ValueError, match="lo"):
        kinetics.count_transitions(sig, 0.9, 0.1)


def test_transition_rate_of_a_telegraph_signal():
    from lss.gomodel import count_transitions as go_count

    rng = np.random.default_rng(9)
    s = chain(np.array([[0.99, 0.01], [0.01, 0.99]]), 200_000, seed=3)
    x = s + rng.normal(0, 0.1, len(s))
    assert kinetics.count_transitions(x, 0.3, 0.7) == go_count(x, 0.3, 0.7)
    rate, err = kinetics.transition_rate(x, 0.3, 0.7, frame_time=2.0)
    assert rate == pytest.approx(0.01 / 2.0, rel=0.1)  # switches per unit time
    assert 0.005 < err / rate < 0.1
    assert kinetics.cost_per_time(10.0, 1000, 0.5) == pytest.approx(0.02)


# ------------------------------------------------------------------------------------- MSM baseline
@pytest.fixture(scope="module")
def three_state_latent():
    T = reversible_T()
    s = chain(T, 100_000, seed=1)
    rng = np.random.default_rng(10)
    centers = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    lat = (centers[s] + rng.normal(0, 0.3, (len(s), 2))).astype(np.float32)
    return T, s, centers, lat


def test_msm_baseline_reproduces_a_known_chain(three_state_latent, tmp_path):
    from lss.msm import msm_timescales

    T, s, centers, lat = three_state_latent
    exact = exact_timescales(T, 2)
    base = msm.MSMBaseline(n_states=9, lag=1, random_state=0).fit([lat[:50_000], lat[50_000:]])
    np.testing.assert_allclose(base.timescales(2), exact, rtol=0.1)
    new = base.sample(100_000, random_state=1)
    assert new.shape == (100_001, 2) and new.dtype == np.float32
    assert np.isin(new[:, 0], lat[:, 0]).all()  # points are training frames
    macro = np.argmin(((new[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(msm_timescales([macro], 1, k=2), exact, rtol=0.1)
    # the CK test workflow of LSS against MD: sampled trajectory on the training discretisation
    sets = base.metastable_sets(3)
    assert sorted(np.concatenate(sets).tolist()) == sorted(base.active_set_.tolist())
    ck = msm.chapman_kolmogorov(base.dtrajs_, [base.transform(new)], lag=1, n_steps=3, other_lag=1, sets=sets)
    assert np.all(ck["rmse_other"] < 0.02)
    # reproducible, start state honoured, persisted
    again, states = base.sample(50, start_state=int(base.active_set_[0]), random_state=1, return_states=True)
    assert states[0] == base.active_set_[0]
    # which training frame each step is, so per-frame observables (Q, Rg) follow the samples
    lat_idx, st_idx, idx = base.sample(300, random_state=2, return_states=True, return_index=True)
    np.testing.assert_array_equal(lat_idx, lat[idx])
    np.testing.assert_array_equal(base.sample(300, random_state=2, return_index=True)[1], idx)
    np.testing.assert_array_equal(np.concatenate(base.dtrajs_)[idx], st_idx)
    loaded = msm.MSMBaseline.load(base.save(tmp_path / "msm.pt"))
    np.testing.assert_array_equal(loaded.sample(200, random_state=5), base.sample(200, random_state=5))
    np.testing.assert_allclose(loaded.timescales(2), base.timescales(2))
    # timescales are in frames whatever the lag; regular-space clustering works the same way
    np.testing.assert_allclose(msm.MSMBaseline(n_states=9, lag=2, random_state=0).fit(lat).timescales(2), exact, rtol=0.1)
    reg = msm.MSMBaseline(n_states=50, clustering="regspace", dmin=0.6).fit(lat)
    np.testing.assert_allclose(reg.timescales(2), exact, rtol=0.1)
    with pytest.raises(ValueError, match="n_states"):
        msm.MSMBaseline(n_states=1).fit(lat)
    with pytest.raises(ValueError, match="dmin"):
        msm.MSMBaseline(clustering="regspace").fit(lat)


def test_chapman_kolmogorov_accepts_same_kinetics_rejects_faster(three_state_latent):
    T, s, centers, lat = three_state_latent
    same = chain(T, 100_000, seed=2)
    fast = chain(T @ T, 50_000, seed=3)  # each step is two reference lags
    ck = msm.chapman_kolmogorov([s], [same], lag=1, n_steps=5)
    assert ck["predicted"].shape == (5, 3, 3)
    np.testing.assert_allclose(ck["predicted"][2], np.linalg.matrix_power(T, 3), atol=0.02)
    assert np.all(ck["rmse_reference"] < 0.01) and np.all(ck["rmse_other"] < 0.015)
    ck_fast = msm.chapman_kolmogorov([s], [fast], lag=1, n_steps=5)
    assert np.all(ck_fast["rmse_other"] > 5 * ck["rmse_other"])  # measured: 0.03-0.10 against 0.001-0.004
    ck_ok = msm.chapman_kolmogorov([s], [fast], lag=2, n_steps=3, other_lag=1)  # ... unless told so
    assert np.all(ck_ok["rmse_other"] < 0.015)
    lumped = msm.chapman_kolmogorov([s], [same], lag=1, n_steps=4, sets=[[0], [1, 2]])
    assert lumped["other"].shape == (4, 2, 2)
    np.testing.assert_allclose(lumped["predicted"].sum(-1), 1.0)
    assert np.all(np.abs(lumped["other"] - lumped["predicted"]) < 0.02)
