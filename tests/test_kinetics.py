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


# ----------------------------------------------------------------------- several core states (3-state chain)
P3 = np.array([[0.988, 0.002, 0.010],          # slow, asymmetric hops between three states
               [0.005, 0.975, 0.020],
               [0.015, 0.003, 0.982]])


def markov_chain(P, n, rng, s0=0):
    """One trajectory of the discrete Markov chain with row-stochastic transition matrix ``P``."""
    c = np.cumsum(P, axis=1)
    u = rng.random(n)
    s = np.empty(n, dtype=np.int64)
    s[0] = s0
    for t in range(1, n):
        s[t] = min(np.searchsorted(c[s[t - 1]], u[t], side="right"), len(P) - 1)
    return s


def exact_mfpt(P):
    """m[a, b]: mean number of steps to first reach b from a, from (I - P_{-b,-b}) m_{., b} = 1."""
    n = len(P)
    m = np.full((n, n), np.nan)
    for b in range(n):
        o = [i for i in range(n) if i != b]
        m[o, b] = np.linalg.solve(np.eye(n - 1) - P[np.ix_(o, o)], np.ones(n - 1))
    return m


@pytest.fixture(scope="module")
def chain3():
    return markov_chain(P3, 400_000, np.random.default_rng(0))


def test_exact_mfpt_of_the_reference_chain():
    # hand check of the solver on the 2-state case: m01 = 1 / p01
    m = exact_mfpt(np.array([[0.99, 0.01], [0.04, 0.96]]))
    assert m[0, 1] == pytest.approx(100.0) and m[1, 0] == pytest.approx(25.0)
    m3 = exact_mfpt(P3)
    # first-step analysis holds for every pair: m_ab = 1 + sum_{c != b} P_ac m_cb
    for a in range(3):
        for b in range(3):
            if a != b:
                assert m3[a, b] == pytest.approx(1 + sum(P3[a, c] * m3[c, b] for c in range(3) if c != b))


def test_mfpt_matrix_of_a_three_state_chain_matches_the_exact_mfpts(chain3):
    exact = exact_mfpt(P3)                                   # 58 ... 424 steps
    dt = 0.5
    r = K.mfpt_matrix(chain3, 3, frame_time=dt, n_boot=1000, random_state=0)
    off = ~np.eye(3, dtype=bool)
    assert np.isnan(r["mean"][~off]).all() and (r["n"][~off] == 0).all()
    assert (r["n"][off] > 500).all()
    # each passage A -> B ends in an entry into B, so the A -> B and B -> A counts differ by at most one
    assert np.all(np.abs(r["n"] - r["n"].T) <= 1)
    est, low, high = r["mean"] / dt, r["low"] / dt, r["high"] / dt
    half = (high - low) / 2
    dev = np.abs(est - exact)[off]
    assert np.all(dev < 4 * half[off]), (est, exact, half)
    assert np.all(dev < 0.1 * exact[off]), (est, exact)
    assert np.all((low <= est) & (est <= high) | ~off)
    assert np.all(half[off] < 0.15 * exact[off])              # the intervals are informative
    covered = (low < exact) & (exact < high)
    assert covered[off].sum() >= 4, covered


def test_state_populations_of_a_three_state_chain_match_the_stationary_distribution(chain3):
    w, v = np.linalg.eig(P3.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1))])
    pi /= pi.sum()                                           # about (0.52, 0.09, 0.39)
    r = K.state_populations(chain3, 3, n_blocks=5)
    assert r["p"].sum() == pytest.approx(1.0)
    assert np.all(np.abs(r["p"] - pi) < 4 * r["se"]), (r, pi)
    assert np.all(np.abs(r["p"] - pi) < 0.1 * pi), (r, pi)
    assert np.all((r["se"] > 0) & (r["se"] < 0.1 * pi))


def test_state_populations_by_hand():
    # milestoned: [-, 0, 0, 0, 2, 2, 1]; the leading -1 frame is dropped
    r = K.state_populations(np.array([-1, 0, -1, -1, 2, -1, 1]), 3, n_blocks=2)
    np.testing.assert_allclose(r["p"], [3 / 6, 1 / 6, 2 / 6])
    # blocks [0, 0, 0] and [2, 2, 1]: fractions (1, 0, 0) and (0, 1/3, 2/3); se of two values = |a - b| / 2
    np.testing.assert_allclose(r["se"], [1 / 2, 1 / 6, 1 / 3])
    # each trajectory is milestoned on its own: the second one's leading -1 does not inherit state 0
    r = K.state_populations([np.array([-1, 0, -1]), np.array([-1, 2, -1])], 3, n_blocks=2)
    np.testing.assert_allclose(r["p"], [0.5, 0.0, 0.5])


def test_milestone_by_hand():
    m = K.milestone([-1, 0, -1, -1, 2, -1, 1])
    assert m.tolist() == [-1, 0, 0, 0, 2, 2, 1]
    assert K.milestone(np.array([-1, -1, 1, -1, 0, 0, -1, 2])).tolist() == [-1, -1, 1, 1, 0, 0, 0, 2]
    assert K.milestone([-1, -1]).tolist() == [-1, -1]


def test_mfpt_matrix_by_hand():
    #         0  1   2  3  4  5   6  7  8  9 10  11 12      core entries: 1@3 2@5 0@7 2@9 1@10 0@12
    lab = [0, 0, -1, 1, 1, 2, -1, 0, 0, 2, 1, -1, 0]
    r = K.mfpt_matrix(np.array(lab), 3, frame_time=2.0, random_state=0)
    # a passage A -> B starts at the first entry into A after a visit to B (frame 0 is a visit to 0,
    # not an entry) and ends at the next entry into B; visits to the third core on the way belong to it
    #   0 -> 1: 7 -> 10                       1 -> 0: 3 -> 7, 10 -> 12
    #   0 -> 2: 7 -> 9                        2 -> 0: 5 -> 7, 9 -> 12
    #   1 -> 2: none (10 is never followed by 2)   2 -> 1: 5 -> 10 (the re-entry into 2 at 9 starts nothing)
    n = np.array([[0, 1, 1], [2, 0, 0], [2, 1, 0]])
    mean = 2.0 * np.array([[np.nan, 3, 2], [3, np.nan, np.nan], [2.5, 5, np.nan]])
    assert r["n"].tolist() == n.tolist()
    np.testing.assert_array_equal(r["mean"], mean)
    assert np.isnan(r["low"]).all() and np.isnan(r["high"]).all()   # fewer than 3 passages: no interval
    # two trajectories: passages never run across the join (0 -> 1, 0 -> 2 and 2 -> 1 above do)
    r = K.mfpt_matrix([np.array(lab[:8]), np.array(lab[8:])], 3)
    assert r["n"].tolist() == [[0, 0, 0], [2, 0, 0], [2, 0, 0]]
    assert r["mean"][1, 0] == 3.0 and r["mean"][2, 0] == 2.5


def test_mfpt_matrix_with_two_states_is_mean_first_passage_times():
    rng = np.random.default_rng(5)
    lo, hi = 0.35, 0.65
    xs = []
    for n in (60_000, 40_000):
        s = two_state_chain(n, 0.01, 0.03, rng)
        xs.append(np.where(s == 1, 0.8, 0.2) + rng.normal(0, 0.12, n))   # noise puts frames between the cores
    labels = []
    for x in xs:
        lab = np.full(len(x), -1)
        lab[x < lo] = 0
        lab[x > hi] = 1
        labels.append(lab)
    assert 0.01 < np.mean(np.concatenate(labels) == -1) < 0.3
    ref = K.mean_first_passage_times(xs, lo, hi, frame_time=0.5, n_boot=500, random_state=3)
    r = K.mfpt_matrix(labels, 2, frame_time=0.5, n_boot=500, random_state=3)
    for (a, b), key in (((0, 1), "lo_to_hi"), ((1, 0), "hi_to_lo")):
        assert ref[key]["n"] > 300
        assert r["n"][a, b] == ref[key]["n"]
        assert r["mean"][a, b] == pytest.approx(ref[key]["mean"], rel=1e-12)
        # the same block bootstrap with the same generator: the same interval
        assert r["low"][a, b] == pytest.approx(ref[key]["low"], rel=1e-12)
        assert r["high"][a, b] == pytest.approx(ref[key]["high"], rel=1e-12)
    # and against the independent two-state passage finder (mean_first_passage_times now wraps mfpt_matrix)
    fpt = K.first_passage_times(xs, lo, hi)
    for (a, b), key in (((0, 1), "lo_to_hi"), ((1, 0), "hi_to_lo")):
        assert r["n"][a, b] == len(fpt[key])
        assert r["mean"][a, b] == pytest.approx(0.5 * fpt[key][:, 0].mean(), rel=1e-12)


def test_integrated_time_of_an_exponential_and_of_a_slow_tail():
    from lss.kinetics import integrated_time
    k = np.arange(400)
    one = np.exp(-k / 20.0)
    assert integrated_time(one, 1.0, 10**9)["t_int"] == pytest.approx(20.0, rel=0.01)
    two = 0.8 * np.exp(-k / 20.0) + 0.2 * np.exp(-k / 100.0)     # a slow tail: t_int = 0.8*20 + 0.2*100 = 36
    r = integrated_time(np.stack([one, two], 1), 1.0, 10**9)
    assert r["t_int"][1] == pytest.approx(36.0, rel=0.03) and r["t_int"][0] < r["t_int"][1]
