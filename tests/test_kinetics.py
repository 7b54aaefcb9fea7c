"""Kinetics against analytic answers: OU relaxation times, the MFPT of a two-state chain, the lag rule."""
import numpy as np
import pytest
from scipy.signal import lfilter

from lss import kinetics as K


def ou(n, t, rng):
    """Exact discrete Ornstein-Uhlenbeck process with relaxation time ``t`` frames: AR(1), unit variance."""
    a = np.exp(-1.0 / t)
    noise = rng.standard_normal(n) * np.sqrt(1 - a * a)
    noise[0] = rng.standard_normal()              # stationary start
    return lfilter([1.0], [1.0, -a], noise)


@pytest.fixture(scope="module")
def ou_modes():
    rng = np.random.default_rng(1)
    ts = np.array([40.0, 8.0, 2.0])               # the last one near the sampling interval (1 frame)
    x = np.stack([ou(400_000, t, rng) for t in ts], axis=1)
    return ts, x


def test_relaxation_table_recovers_ou_timescales_including_one_near_the_sampling_interval(ou_modes):
    ts, x = ou_modes
    tab = K.relaxation_table(x, max_lag=200, frame_time=1.0, n_blocks=5, min_points=5, cutoff=np.exp(-3))
    assert tab["resolved"].all()
    np.testing.assert_allclose(tab["t"], ts, rtol=0.05)
    # paper's +- (block spread) is sqrt(n_blocks) times the standard error
    np.testing.assert_allclose(tab["spread"], tab["se"] * np.sqrt(5))
    assert np.all(np.abs(tab["t"] - ts) < 4 * tab["se"] + 0.02 * ts)


def test_a_process_faster_than_the_grid_is_not_resolved_rather_than_a_number(ou_modes):
    ts, x = ou_modes
    tab = K.relaxation_table(x, max_lag=200, frame_time=1.0, lag_step=10, n_blocks=5, min_points=5)
    # on a grid of 10 frames only the 40-frame process has >= 5 points above e^-2
    assert tab["resolved"].tolist() == [True, False, False]
    assert np.isnan(tab["t"][1:]).all()
    assert abs(tab["t"][0] / ts[0] - 1) < 0.1


def test_the_fit_stops_at_the_noise():
    rng = np.random.default_rng(3)
    x = ou(3000, 30.0, rng)                       # short: the tail of C is noise
    c = K.autocorrelation(x, 300)
    noise = K.acf_noise(c, len(x))
    assert noise[0] < noise[50] < 1 and np.all(np.diff(noise) >= 0)
    t = K.relaxation_time(c, noise=noise, cutoff=1e-3)
    assert 15 < t < 60


def two_state_chain(n, p01, p10, rng):
    u = rng.random(n)
    s = np.empty(n, dtype=np.int8)
    s[0] = 0
    for i in range(1, n):
        p = p01 if s[i - 1] == 0 else p10
        s[i] = 1 - s[i - 1] if u[i] < p else s[i - 1]
    return s


def test_mean_first_passage_times_of_a_two_state_chain_are_exact():
    rng = np.random.default_rng(7)
    p01, p10 = 0.01, 0.04                          # exact MFPTs: 1/p01 = 100 and 1/p10 = 25 steps
    s = [two_state_chain(200_000, p01, p10, rng) for _ in range(2)]
    res = K.mean_first_passage_times([x.astype(float) for x in s], 0.25, 0.75, frame_time=0.5, n_boot=500,
                                     random_state=0)
    for key, exact in (("lo_to_hi", 100.0), ("hi_to_lo", 25.0)):
        r = res[key]
        assert r["n"] > 1000
        assert abs(r["mean"] / (0.5 * exact) - 1) < 0.05
        assert r["low"] < 0.5 * exact < r["high"]
        assert (r["high"] - r["low"]) / r["mean"] < 0.15


def test_first_passages_skip_the_cut_visits_at_both_ends():
    x = np.array([0.1, 0.1, 0.9, 0.9, 0.9, 0.5, 0.1, 0.1, 0.9])   # 0 | 1 1 1 (0.5 keeps 1) | 0 0 | 1
    f = K.first_passage_times(x, 0.25, 0.75)
    assert f["hi_to_lo"][:, 0].tolist() == [4]       # entered 1 at frame 2, entered 0 at frame 6
    assert f["lo_to_hi"][:, 0].tolist() == [2]       # entered 0 at 6, entered 1 at 8
    assert K.mean_first_passage_times(np.zeros(50), 0.25, 0.75)["lo_to_hi"]["n"] == 0


def implied_timescale(c, lag):
    return -lag / np.log(c)


def test_lag_rule_picks_the_lag_the_analytic_timescales_predict():
    # x = y1 + y2: OU processes with t = 50 and 3 frames, variances 0.98 / 0.02. Its lag-tau implied
    # timescale -tau / ln C(tau), C = 0.98 e^(-tau/50) + 0.02 e^(-tau/3), rises with tau towards 50:
    # 39.4, 41.0, 45.3, 48.3 frames at lags 1, 3, 9, 27.
    lags = np.array([1, 3, 9, 27])
    exact = implied_timescale(0.98 * np.exp(-lags / 50) + 0.02 * np.exp(-lags / 3), lags)
    predicted = K.converged_lag(lags, exact[:, None], tol=0.1)
    assert predicted == 9                           # t(9) within 10 % of t(27); t(3) is not
    rng = np.random.default_rng(11)
    n = 4_000_000
    x = np.sqrt(0.98) * ou(n, 50.0, rng) + np.sqrt(0.02) * ou(n, 3.0, rng)
    c = K.autocorrelation(x, 40)
    est = implied_timescale(c[lags], lags)
    assert K.converged_lag(lags, est[:, None], tol=0.1) == predicted


def test_lag_rule_refuses_bad_input_and_reports_no_convergence():
    with pytest.raises(ValueError, match="ascending"):
        K.converged_lag([4, 2], [[10.0], [20.0]])
    assert K.converged_lag([1, 2, 4], [[5.0], [10.0], [20.0]]) is None
