"""SRV encoder against exact answers: the four-well potential's transfer operator on a fine grid.

The reference is the exact discrete-time operator of the Brownian dynamics that produced the data
(``lss.fourwell.em_transition_matrix`` raised to the lag): its eigenvalues, and its right
eigenvectors interpolated at the trajectory points as the exact eigenfunctions.
"""
import numpy as np
import pytest
import torch

from lss import fourwell
from lss.latent import LatentTrajectories, load_latent
from lss.srv import (SRV, choose_n_components, implied_timescales_vs_lag,
                     variance_concentration)
from lss.srv import rare_mode_frames

STRIDE = 5        # BD steps per frame
LAG = 10          # frames (50 BD steps; exact lambda_1 = 0.900, t_1 = 94.6 frames)
FIT = dict(n_components=2, lag=LAG, batch_size=5000, max_epochs=25, patience=5, random_state=0)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def featurize(x):
    """Positions -> (x, x^2), float32, shape (n_frames, 2)."""
    return np.stack([x, x**2], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    xs = [fourwell.simulate(150_000, save_every=STRIDE, random_state=s) for s in (1, 2)]
    return xs, [featurize(x) for x in xs]


@pytest.fixture(scope="module")
def exact():
    g = fourwell.grid(600)
    T = fourwell.em_transition_matrix(g, n_steps=STRIDE * LAG)
    w, v = np.linalg.eig(T)
    order = np.argsort(-w.real)
    return g, w.real[order], v.real[:, order]


@pytest.fixture(scope="module")
def srv(data):
    return SRV(**FIT).fit(data[1])


def test_eigenvalues_match_exact_operator(srv, exact):
    _, w, _ = exact
    assert w[0] == pytest.approx(1.0, abs=1e-9)
    assert srv.eigenvalues_.shape == (srv.n_output_,) == (4,)
    assert np.all(np.diff(srv.eigenvalues_) <= 0)
    np.testing.assert_allclose(srv.eigenvalues_[:2], w[1:3], rtol=0.10)
    t_exact = -LAG / np.log(w[1])
    assert srv.timescales_[0] == pytest.approx(t_exact, rel=0.15)
    np.testing.assert_allclose(srv.timescales(0.005), srv.timescales_ * 0.005)


def test_eigenfunctions_match_exact_operator(srv, data, exact):
    g, _, v = exact
    xs, feats = data
    psi = np.concatenate(srv.transform(feats))
    x = np.concatenate(xs)
    for i in range(2):
        r = np.corrcoef(psi[:, i], np.interp(x, g, v[:, i + 1]))[0, 1]
        assert abs(r) >= 0.95, f"psi_{i + 1} correlates with the exact eigenfunction at |r| = {abs(r):.3f}"


def test_coordinates_standardised_and_signed(srv, data):
    out = srv.transform(data[1])
    assert isinstance(out, list) and all(o.dtype == np.float32 and o.shape[1] == 2 for o in out)
    psi = np.concatenate(out).astype(np.float64)
    np.testing.assert_allclose(psi.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(psi.std(0), 1, atol=1e-4)
    assert np.all((psi**3).mean(0) > 0)                        # documented sign convention
    one = srv.transform(data[1][0])                            # array in -> array out
    assert isinstance(one, np.ndarray) and np.array_equal(one, out[0])
    full = srv.transform(data[1][0], modes=range(srv.n_output_))
    np.testing.assert_array_equal(full[:, [0, 1]], one)


def test_vamp2_agrees_with_deeptime(srv, data):
    from deeptime.decomposition import TICA, VAMP

    raw = srv.basis(data[1])
    resolved = 1 + np.sum(srv.eigenvalues_at(data[1], LAG) ** 2)   # eigenproblem solved on these data
    assert 1 < resolved <= 1 + srv.n_output_
    tica = TICA(lagtime=LAG, scaling=None).fit(raw).fetch_model().score(r=2)
    assert resolved == pytest.approx(tica, rel=1e-4)           # same reversible estimator
    vamp = VAMP(lagtime=LAG).fit(raw).fetch_model().score(r=2)
    assert resolved == pytest.approx(vamp, rel=1e-2)           # non-reversible: statistically close
    # The eigenfunction coordinates span the same space: same score.
    psi = [p.astype(np.float64) for p in srv.transform(data[1], modes=range(srv.n_output_))]
    assert TICA(lagtime=LAG, scaling=None).fit(psi).fetch_model().score(r=2) == pytest.approx(resolved, rel=1e-4)
    # score() keeps the fitted eigenfunctions: on the data they were fitted on it is the re-solved score;
    # on new data each fitted eigenfunction keeps its autocorrelation (the exact lambda_1 is 0.900).
    assert srv.score(data[1]) == pytest.approx(resolved, rel=1e-3)
    other = featurize(fourwell.simulate(60_000, save_every=STRIDE, random_state=9))
    assert abs(srv.score(other, k=1) - (1 + 0.900 ** 2)) < 0.05
    # The kept restart's held-out score (training eigenfunctions on validation pairs) is close to the
    # re-solved validation score the history shows, for a good basis.
    best = srv.restart_scores_[srv.best_restart_]
    assert abs(best - max(srv.history_["val_vamp2"])) < 0.05
    assert abs(srv.heldout_eigenvalues_[0] - srv.eigenvalues_[0]) < 0.03
    assert len(srv.heldout_eigenvalues_) == srv.n_output_ and srv.dimension_rule_


def test_timescale_criterion_keeps_only_modes_slower_than_the_lag(data):
    fit = {**FIT, "n_components": None, "min_timescale_ratio": 2.0, "n_restarts": 1}
    srv = SRV(**fit).fit(data[1])
    slow = [i for i in range(srv.n_output_) if srv.timescales_[i] >= 2 * srv.lag]
    assert list(srv.modes_) == slow and len(slow) >= 1
    assert "lags" in srv.dimension_rule_
    with pytest.raises(ValueError, match="min_timescale_ratio"):
        SRV(**{**fit, "min_timescale_ratio": 1e6}).fit(data[1])


def test_fixed_basis_timescales_converge_with_lag(srv, data, exact):
    _, w, _ = exact
    res = implied_timescales_vs_lag(data[1], [5, 10, 20], n_timescales=2, estimator=srv)
    assert res["timescales"].shape == (3, 2)
    t_exact = -LAG / np.log(w[1])
    np.testing.assert_allclose(res["timescales"][:, 0], t_exact, rtol=0.2)


def test_save_load_round_trip(srv, data, tmp_path):
    p = srv.save(tmp_path / "srv.lss")
    back = SRV.load(p)
    x = data[1][0][:5000]
    np.testing.assert_array_equal(back.transform(x), srv.transform(x))
    np.testing.assert_array_equal(back.eigenvalues_, srv.eigenvalues_)
    assert back.modes_ == srv.modes_ and back.get_params() == srv.get_params()
    assert back.n_components_ == 2 and back.n_features_in_ == 2
    for k in SRV._state["fitted"]:
        a, b = getattr(back, k), getattr(srv, k)
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b, k
    assert back.score(data[1]) == pytest.approx(srv.score(data[1]), rel=1e-12)
    psi = srv.transform(data[1])
    LatentTrajectories(psi, 0.005, "steps", LAG, np.array(srv.modes_)).save(tmp_path / "latent.npz")
    back = load_latent(tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(psi, back.trajs)) and len(back.trajs) == 2
    assert (back.frame_time, back.time_unit, back.lag, tuple(back.modes)) == (0.005, "steps", LAG, (0, 1))
    from lss.mdn import MDNPropagator

    with pytest.raises(ValueError, match="format"):
        MDNPropagator.load(p)


def test_seed_repeatable_and_restarts(data):
    x = data[1][0][:12000]
    kw = dict(n_components=1, lag=LAG, batch_size=2000, max_epochs=3, random_state=7)
    a, b = SRV(**kw).fit(x), SRV(**kw).fit(x)
    np.testing.assert_array_equal(a.transform(x), b.transform(x))
    assert a.history_ == b.history_
    r = SRV(**{**kw, "n_restarts": 3, "max_epochs": 2}).fit(x)
    assert r.restart_scores_.shape == (3,) and len(set(r.restart_scores_.round(10))) == 3
    assert r.best_restart_ == int(np.argmax(r.restart_scores_))


def test_explicit_modes(data):
    x = data[1][0][:8000]
    s = SRV(modes=(0, 2), lag=LAG, batch_size=2000, max_epochs=2, stride=3, random_state=0).fit(x)
    assert s.modes_ == (0, 2) and s.n_output_ == 5
    np.testing.assert_array_equal(s.transform(x), s.transform(x, modes=range(5))[:, [0, 2]])
    s.select_modes([1])
    np.testing.assert_array_equal(s.transform(x), s.transform(x, modes=range(5))[:, [1]])
    with pytest.raises(ValueError, match="modes"):
        s.select_modes([5])


def test_bad_input_raises(data):
    x = data[1][0]
    with pytest.raises(ValueError, match="constant"):
        SRV(lag=LAG).fit(np.ones((5000, 3), np.float32))
    bad = x.copy()
    bad[100, 0] = np.nan
    with pytest.raises(ValueError, match="trajs.*NaN"):
        SRV(lag=LAG).fit(bad)
    with pytest.raises(ValueError, match="lag"):
        SRV(lag=len(x)).fit(x)
    with pytest.raises(ValueError, match="lag"):
        SRV(lag=0).fit(x)
    with pytest.raises(ValueError, match="too short"):
        SRV(lag=LAG).fit(x[:150])
    with pytest.raises(ValueError, match="modes"):
        SRV(modes=(1, 1), lag=LAG).fit(x)
    with pytest.raises(ValueError, match="n_output"):
        SRV(n_components=3, n_output=2, lag=LAG).fit(x)
    with pytest.raises(RuntimeError, match="not fitted"):
        SRV().transform(x)


def test_divergence_raises_and_keeps_nothing(data, monkeypatch):
    import lss.srv

    monkeypatch.setattr(lss.srv, "_vamp2_torch", lambda z0, z1, eps: (z0.sum() * np.nan).double())
    s = SRV(lag=LAG, max_epochs=2)
    with pytest.raises(RuntimeError, match="diverged"):
        s.fit(data[1][0][:5000])
    assert not hasattr(s, "net_") and not [k for k in vars(s) if k.endswith("_")]
    with pytest.raises(RuntimeError, match="SRV is not fitted"):
        s._check_fitted()


def test_fit_and_transform_leave_global_random_state_alone(data):
    x = data[1][0][:6000]
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    s = SRV(n_components=1, lag=LAG, batch_size=2000, max_epochs=2, random_state=3).fit(x)
    s.transform(x)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]


def test_chosen_dimension_and_rare_modes_are_recorded(data):
    x = data[1][0][:12000]
    s = SRV(n_components=None, lag=LAG, batch_size=2000, max_epochs=3, random_state=0).fit(x)
    assert s.n_output_ == 8 and s.n_components_ == len(s.modes_) >= 1
    assert s.n_components_ == choose_n_components(s.eigenvalues_, max_components=7)
    assert s.modes_ == tuple(range(s.n_components_)) and s.rare_modes_ == ()
    np.testing.assert_array_equal(s.variance_concentration_,
                                  variance_concentration(s.transform(x, modes=range(8))))
    cut = float(np.sort(s.variance_concentration_)[1]) + 1e-9      # the two least concentrated are rare
    r = SRV(n_components=2, rare_fraction=cut, n_output=8, lag=LAG, batch_size=2000, max_epochs=3,
            random_state=0).fit(x)
    assert len(r.rare_modes_) == 2 and not set(r.rare_modes_) & set(r.modes_) and r.n_components_ == 2
    assert r.get_params()["n_components"] == 2 and r.fit_time_s_ > 0


def test_choose_n_components_from_gap():
    lam = [0.95, 0.93, 0.90, 0.40, 0.35]
    assert choose_n_components(lam) == 3
    assert choose_n_components([0.9, 0.3, 0.28, 0.1]) == 1
    assert choose_n_components([0.9, 0.3, 0.28, 0.1], min_components=2) == 3
    with pytest.raises(ValueError, match="min_components"):
        choose_n_components(lam, min_components=0)


def test_variance_concentration_flags_rare_states():
    rng = np.random.default_rng(0)
    g = rng.standard_normal(200_000)
    two = np.sign(g) + 0.1 * rng.standard_normal(len(g))
    rare = np.where(rng.random(len(g)) < 0.002, 30.0, 0.0) + rng.standard_normal(len(g))
    c = variance_concentration(np.stack([g, two, rare], axis=1))
    assert c[0] == pytest.approx(0.12, abs=0.01)
    assert c[1] == pytest.approx(0.25, abs=0.02)
    assert c[2] < 0.005
    assert variance_concentration([g[:1000, None], g[1000:2000, None]]).shape == (1,)


# A/B exchange slowly but often (timescale ~100 frames, ~100 transitions); R is entered rarely from A
# (~2 visits per 10,000 frames) and left slowly (mean visit 15 frames): ~0.3 % of the frames.
RARE_P = np.array([[1 - 0.005 - 4e-4, 0.005, 4e-4],
                   [0.005, 0.995, 0.0],
                   [1 / 15, 0.0, 1 - 1 / 15]])
RARE_MEANS = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 5.0]])     # A, B, R in the first two features


def rare_state_toy(n_frames=20_000, n_trajs=2, seed=0):
    """Trajectories of the 3-state chain ``RARE_P`` (start in A): states (int) and 4 features each.

    Features: the state's mean plus N(0, 0.5^2) noise (2 dims; R is 5 noise sd from A), and 2 dims of
    white N(0, 1) noise (no slow content). Returns (list of states, list of float32 features).
    """
    rng = np.random.default_rng(seed)
    cum = np.cumsum(RARE_P, axis=1)
    states, feats = [], []
    for _ in range(n_trajs):
        u = rng.random(n_frames)
        s = np.zeros(n_frames, dtype=int)
        for t in range(1, n_frames):
            s[t] = min(int(np.searchsorted(cum[s[t - 1]], u[t], side="right")), 2)
        x = np.concatenate([RARE_MEANS[s] + 0.5 * rng.standard_normal((n_frames, 2)),
                            rng.standard_normal((n_frames, 2))], axis=1)
        states.append(s)
        feats.append(x.astype(np.float32))
    return states, feats


def test_rare_slow_state_is_dropped_and_its_frames_named():
    lag, ratio, cut = 2, 2.0, 0.02
    # By construction: R has its own slow relaxation, slower than the timescale criterion.
    w, vl = np.linalg.eig(np.linalg.matrix_power(RARE_P, lag).T)     # left eigenvectors
    order = np.argsort(-w.real)
    w, vl = w.real[order], vl.real[:, order]
    t_exact = -lag / np.log(w[1:])
    r_exact = 1 + int(np.argmax(np.abs(vl[2, 1:]) / np.abs(vl[:, 1:]).sum(0)))   # density mode on R
    assert r_exact == 2 and t_exact[r_exact - 1] >= ratio * lag      # A/B ~100 frames, R ~14 frames
    states, X = rare_state_toy(seed=3)
    s = np.concatenate(states)
    in_r = s == 2
    assert 0.002 <= in_r.mean() <= 0.004 and np.sum(np.diff(in_r.astype(int)) == 1) >= 4

    kw = dict(n_components=None, lag=lag, min_timescale_ratio=ratio, n_output=6, hidden=(16, 16),
              batch_size=2000, max_epochs=30, patience=10, random_state=0)
    srv = SRV(**kw, rare_fraction=cut).fit(X)
    psi = np.concatenate(srv.transform(X, modes=range(srv.n_output_))).astype(np.float64)
    corr = lambda ind: np.abs([np.corrcoef(psi[:, i], ind)[0, 1] for i in range(srv.n_output_)])
    r, ab = int(np.argmax(corr(in_r))), int(np.argmax(corr(s == 1)))
    assert r != ab and corr(in_r)[r] > 0.9 and corr(s == 1)[ab] > 0.9
    conc = srv.variance_concentration_
    assert conc[r] < cut < conc[ab]                      # ~0.0015 (half of R's 0.3 %) and ~0.25
    assert srv.timescales_[r] >= ratio * lag             # slow enough: only the rare rule drops it
    assert r in srv.rare_modes_ and r not in srv.modes_
    assert ab in srv.modes_ and ab not in srv.rare_modes_
    assert f"rare: {list(srv.rare_modes_)}" in srv.dimension_rule_

    flagged = rare_mode_frames(srv, X, r)
    assert flagged.dtype == bool and flagged.shape == (len(s),) and flagged.any()
    assert in_r[flagged].mean() >= 0.9                   # the tail is R ...
    assert flagged[in_r].mean() >= 0.5                   # ... and most of R is in the tail

    keep = SRV(**kw, rare_fraction=0.0).fit(X)           # same network; the rare rule switched off
    np.testing.assert_allclose(keep.eigenvalues_, srv.eigenvalues_, rtol=1e-6)
    assert r in keep.modes_ and ab in keep.modes_ and keep.rare_modes_ == ()
