"""MDN propagator: recovers a known transition density; seeds, persistence and bad input."""
import numpy as np
import pytest
import torch

import lss.mdn
from lss.mdn import MDNPropagator

THETA = np.array([1.0, 3.0])      # OU relaxation rates per unit time, one per dimension
SIGMA = np.array([1.0, 0.5])      # noise amplitudes
DT = 0.2                          # time between frames


def ou_trajectory(n, seed):
    """Exact discretisation of a 2-D Ornstein-Uhlenbeck process dx = -theta x dt + sigma dW."""
    rng = np.random.default_rng(seed)
    a = np.exp(-THETA * DT)
    s = SIGMA * np.sqrt((1 - a**2) / (2 * THETA))
    x = np.empty((n, 2))
    x[0] = rng.normal(size=2) * SIGMA / np.sqrt(2 * THETA)
    noise = rng.normal(size=(n, 2)) * s
    for t in range(1, n):
        x[t] = a * x[t - 1] + noise[t]
    return x.astype(np.float32)


def ou_exact(x0, lag):
    a = np.exp(-THETA * DT * lag)
    return x0 * a, SIGMA * np.sqrt((1 - a**2) / (2 * THETA))


@pytest.fixture(scope="module")
def ou_mdn():
    x = ou_trajectory(30_000, seed=0)
    return MDNPropagator(n_kernels=4, lag=2, hidden=(64, 64), lr=3e-3, batch_size=512, max_epochs=40,
                         patience=6, random_state=0).fit(x), x


def test_mdn_recovers_ou_transition_density(ou_mdn):
    mdn, x = ou_mdn
    std_stat = SIGMA / np.sqrt(2 * THETA)
    x0 = np.array([[0.0, 0.0], [0.8, -0.2], [-0.8, 0.3], [0.4, 0.3]]) * std_stat / std_stat.max() * 1.5
    w, mu, sig = mdn.mixture(x0)
    mean = np.einsum("nc,ncm->nm", w, mu)
    var = np.einsum("nc,ncm->nm", w, sig**2 + mu**2) - mean**2
    m_ex, s_ex = ou_exact(x0, lag=2)
    # tolerance: conditional mean within 10 % of the stationary spread, conditional std within 10 %
    assert np.all(np.abs(mean - m_ex) < 0.10 * std_stat), (mean, m_ex)
    np.testing.assert_allclose(np.sqrt(var), np.broadcast_to(s_ex, var.shape), rtol=0.10)
    # held-out likelihood within 0.05 nats per pair of the exact transition density
    xt = ou_trajectory(5000, seed=99)
    a, b = xt[:-2], xt[2:]
    m, s = ou_exact(a.astype(float), 2)
    exact_ll = np.mean(np.sum(-0.5 * ((b - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi), axis=1))
    assert np.mean(mdn.log_prob(a, b)) == pytest.approx(exact_ll, abs=0.05)


def test_sampled_trajectories_have_ou_statistics(ou_mdn):
    mdn, x = ou_mdn
    traj = mdn.sample(np.zeros((200, 2)), 60, random_state=3)
    assert traj.shape == (200, 61, 2) and traj.dtype == np.float32
    tail = traj[:, 20:].reshape(-1, 2)  # relaxed after 20 lags (40 frames >> 1 / theta)
    np.testing.assert_allclose(tail.std(0), SIGMA / np.sqrt(2 * THETA), rtol=0.12)
    # one-lag autocorrelation exp(-theta * 2 DT)
    ac = [np.corrcoef(traj[:, 20:-1, d].ravel(), traj[:, 21:, d].ravel())[0, 1] for d in range(2)]
    np.testing.assert_allclose(ac, np.exp(-THETA * 2 * DT), atol=0.05)
    assert 0 <= mdn.clipped_fraction_ < 0.01


def test_sampling_is_seeded_and_save_load_round_trips(ou_mdn, tmp_path):
    mdn, _ = ou_mdn
    x0 = np.zeros((5, 2))
    a = mdn.sample(x0, 30, random_state=7)
    np.testing.assert_array_equal(a, mdn.sample(x0, 30, random_state=7))
    assert not np.array_equal(a, mdn.sample(x0, 30, random_state=8))
    np.testing.assert_array_equal(a[:, 0], x0)
    path = mdn.save(tmp_path / "mdn.lss")
    loaded = MDNPropagator.load(path)
    np.testing.assert_array_equal(loaded.sample(x0, 30, random_state=7), a)
    assert loaded.history_ == mdn.history_ and loaded.get_params() == mdn.get_params()
    assert loaded.n_components_ == loaded.n_features_in_ == 2 and loaded.best_epoch_ == mdn.best_epoch_
    np.testing.assert_array_equal(loaded.lo_, mdn.lo_)
    for (k, v), (k2, v2) in zip(mdn.net_.state_dict().items(), loaded.net_.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_damaged_or_foreign_files_are_refused(ou_mdn, tmp_path):
    mdn, _ = ou_mdn
    path = mdn.save(tmp_path / "mdn.lss")
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        MDNPropagator.load(tmp_path / "cut.pt")
    import torch
    torch.save({"format": "something/9"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="format"):
        MDNPropagator.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        MDNPropagator.load(tmp_path / "absent.pt")


def test_bad_input_names_the_parameter():
    x = ou_trajectory(500, seed=1)
    with pytest.raises(ValueError, match="lag"):
        MDNPropagator(lag=-1).fit(x)
    with pytest.raises(ValueError, match="lag"):
        MDNPropagator(lag=500).fit(x)
    bad = x.copy()
    bad[10, 1] = np.nan
    with pytest.raises(ValueError, match="trajs.*NaN"):
        MDNPropagator(lag=1).fit(bad)
    with pytest.raises(ValueError, match="constant"):
        MDNPropagator(lag=1).fit(np.ones((100, 2), np.float32))
    with pytest.raises(RuntimeError, match="not fitted"):
        MDNPropagator().sample(np.zeros((1, 2)), 3)


def test_bad_sampling_input_names_the_parameter(ou_mdn):
    mdn, _ = ou_mdn
    with pytest.raises(ValueError, match="x0"):
        mdn.sample(np.zeros((3, 5)), 10)
    with pytest.raises(ValueError, match="n_steps"):
        mdn.sample(np.zeros((3, 2)), -1)
    with pytest.raises(ValueError, match="x_tau"):
        mdn.log_prob(np.zeros((3, 2)), np.full((3, 2), np.nan))


def test_diverging_training_stops_with_a_clear_error_and_writes_no_checkpoint(tmp_path):
    x = ou_trajectory(3000, seed=2)
    ckpt = tmp_path / "mdn.lss"
    with pytest.raises(RuntimeError, match="diverged"):
        MDNPropagator(n_kernels=2, lag=1, lr=1e12, max_epochs=5, random_state=0).fit(x, checkpoint=ckpt)
    assert not ckpt.exists()


def test_forced_nan_leaves_the_propagator_unfitted(monkeypatch, tmp_path):
    x = ou_trajectory(2000, seed=3)
    real = lss.mdn._mixture_log_prob
    calls = []

    def nan_on_third(*a):                   # a few good steps first, then a NaN loss
        calls.append(1)
        out = real(*a)
        return out * np.nan if len(calls) >= 3 else out

    monkeypatch.setattr(lss.mdn, "_mixture_log_prob", nan_on_third)
    mdn = MDNPropagator(n_kernels=2, lag=1, batch_size=256, max_epochs=3, random_state=0)
    with pytest.raises(RuntimeError, match="diverged"):
        mdn.fit(x, checkpoint=tmp_path / "ck.pt")
    assert not [k for k in vars(mdn) if k.endswith("_")] and not (tmp_path / "ck.pt").exists()
    with pytest.raises(RuntimeError, match="MDNPropagator is not fitted"):
        mdn._check_fitted()
    # a refit of an already fitted propagator that diverges keeps the earlier fit untouched
    monkeypatch.setattr(lss.mdn, "_mixture_log_prob", real)
    mdn.set_params(max_epochs=1).fit(x)
    before = {k: v.clone() for k, v in mdn.net_.state_dict().items()}
    calls.clear()
    monkeypatch.setattr(lss.mdn, "_mixture_log_prob", nan_on_third)
    with pytest.raises(RuntimeError, match="diverged"):
        mdn.fit(x)
    assert all(torch.equal(v, before[k]) for k, v in mdn.net_.state_dict().items())


def test_fit_and_sample_leave_global_random_state_alone():
    x = ou_trajectory(2000, seed=4)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    mdn = MDNPropagator(n_kernels=2, lag=1, batch_size=512, max_epochs=2, random_state=1).fit(x)
    mdn.sample(np.zeros((3, 2)), 20, random_state=5)
    mdn.sample(np.zeros((3, 2)), 20)                       # unseeded: fresh entropy, still local
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]


def test_params_come_from_the_signature():
    p = MDNPropagator(n_kernels=5).get_params()
    assert p["n_kernels"] == 5 and "n_components" not in p
    with pytest.raises(TypeError):
        MDNPropagator(n_components=7)
    with pytest.raises(ValueError, match="not a parameter"):
        MDNPropagator().set_params(n_components=3)


def test_mixture_log_density_equals_the_written_out_formula():
    import math

    g = torch.Generator().manual_seed(0)
    n, C, m = 500, 7, 3
    log_w = torch.log_softmax(torch.randn(n, C, generator=g) * 3, dim=1)
    mu = torch.rand(n, C, m, generator=g)
    sigma = 1e-3 + torch.rand(n, C, m, generator=g) * 0.3
    y = torch.rand(n, m, generator=g)
    z = (y[:, None, :] - mu) / sigma                 # the formula lss.mdn used before MixtureSameFamily
    comp = -0.5 * (z ** 2).sum(-1) - torch.log(sigma).sum(-1) - 0.5 * m * math.log(2 * math.pi)
    ref = torch.logsumexp(log_w + comp, dim=1)
    got = lss.mdn._mixture_log_prob(log_w, mu, sigma, y)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
