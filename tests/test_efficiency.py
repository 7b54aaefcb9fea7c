"""lss.efficiency: amplification factor, coverage and the observables of the data-efficiency study.

Known answers: a power-law MD error curve inverts exactly; Gaussian intervals cover at their nominal
rate; a three-state Markov chain with known stationary distribution and known mean first-passage
times (solved from its transition matrix); an Ornstein-Uhlenbeck latent coordinate with a known
relaxation time.
"""
import math

import numpy as np
import pytest

from lss import gomodel
from lss.efficiency import Observables, amplification_factor, coverage, errors, estimate
from lss.stats import cut_pieces


def test_amplification_inverts_a_power_law():
    L = np.array([0.25, 0.5, 1, 2, 4]) * 1000
    md = 0.4 * (L / 1000) ** -0.5
    g, how = amplification_factor(L, md, 0.2, 1000)     # MD reaches 0.2 at 4x the training length
    assert g == pytest.approx(4.0, rel=1e-9) and how == "interpolated"
    g, how = amplification_factor(L, md, 0.1, 1000)     # 16x: beyond the measured lengths
    assert g == pytest.approx(16.0, rel=1e-9) and how == "extrapolated"
    g, how = amplification_factor(L, md, 0.8, 1000)     # worse than MD of its own length: G = 1/4
    assert g == pytest.approx(0.25, rel=1e-9) and how == "interpolated"
    assert amplification_factor(L, md[::-1], 0.2, 1000)[1] == "undefined"   # error rising with length
    assert amplification_factor(L, md, float("inf"), 1000)[1] == "undefined"


def test_coverage_of_gaussian_intervals_is_nominal():
    rng = np.random.default_rng(0)
    n, truth = 20_000, 3.0
    x = truth + rng.standard_normal(n)
    for z, nominal in ((1.0, 0.6827), (1.96, 0.95)):
        c = coverage(np.stack([x - z, x + z], 1), np.full(n, truth))
        assert abs(c["coverage"] - nominal) < 4 * c["mc_se"], c
        assert c["mc_se"] == pytest.approx(math.sqrt(nominal * (1 - nominal) / n), rel=0.05)
    half = coverage(np.stack([x - 1, x + 0 * x + np.nan], 1), np.full(n, truth))   # a missing bound never covers
    assert half["coverage"] == 0.0


def test_cut_pieces_exact_lengths_across_boundaries():
    trajs = [np.arange(7), np.arange(100, 105)]
    p = cut_pieces(trajs, 4, 3)
    assert [np.concatenate(x).tolist() for x in p] == [[0, 1, 2, 3], [4, 5, 6, 100], [101, 102, 103, 104]]
    assert [len(x) for x in p] == [1, 2, 1]           # the middle piece keeps the trajectory boundary
    with pytest.raises(ValueError, match="do not fit"):
        cut_pieces(trajs, 4, 4)


def chain(P, n, rng):
    s = np.zeros(n, dtype=int)
    u = rng.random(n)
    c = np.cumsum(P, 1)
    for t in range(1, n):
        s[t] = np.searchsorted(c[s[t - 1]], u[t])
    return s


#: a three-state chain (unfolded, folded, flipped) with known stationary distribution and MFPTs
CHAIN = np.array([[0.97, 0.02, 0.01], [0.01, 0.98, 0.01], [0.02, 0.02, 0.96]])


def stationary(P):
    """The stationary distribution of transition matrix ``P`` (left eigenvector of eigenvalue 1)."""
    w, v = np.linalg.eig(P.T)
    pi = np.real(v[:, np.argmax(np.real(w))])
    return pi / pi.sum()


def test_three_state_chain_populations_and_mfpts():
    """States written as (Q, flip) cores; populations and MFPTs against the chain's exact values."""
    P, pi = CHAIN, stationary(CHAIN)
    rng = np.random.default_rng(1)
    s = chain(P, 200_000, rng)
    q = np.choose(s, [0.1, 0.95, 0.95]).astype(float)       # unfolded, folded, flipped (folded Q, flipped proline)
    flip = np.choose(s, [0.0, 0.0, math.pi]).astype(float)
    assert np.array_equal(gomodel.metastable_cores(q=q, flip=flip), s)
    ou = np.zeros(len(s))
    for t in range(1, len(s)):
        ou[t] = ou[t - 1] * math.exp(-1 / 50) + rng.standard_normal() * math.sqrt(1 - math.exp(-2 / 50))
    obs = Observables([q], [flip], [np.full(len(s), 1.0)], [ou[:, None]], 1.0)
    est = estimate(obs, acf_steps=150, n_boot=20)
    assert np.allclose(est["p"], pi, atol=0.02), (est["p"], pi)
    for j in range(3):       # exact MFPT into j: solve (I - P_{-j}) m = 1 on the other states
        others = [i for i in range(3) if i != j]
        m = np.linalg.solve(np.eye(2) - P[np.ix_(others, others)], np.ones(2))
        assert np.allclose(est["mfpt"][others, j], m, rtol=0.1), (j, est["mfpt"][others, j], m)
    assert est["t"][0] == pytest.approx(50, rel=0.15)
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in errors(est, est).values())
    other = estimate(Observables([q[:50_000]], [flip[:50_000]], [np.full(50_000, 1.1)], [ou[:50_000, None]], 1.0),
                     acf_steps=150, n_boot=20)
    e = errors(other, est)
    assert e["Rg"] == pytest.approx(0.1) and 0 < e["populations"] < 0.5 and 0 < e["MFPT"] < 0.5


def test_bayesian_msm_intervals_cover_a_known_chain():
    """The plain baseline's credible intervals, checked for coverage of a known truth (not only consistency)."""
    from lss.efficiency import bayesian_msm
    P, pi = CHAIN, stationary(CHAIN)
    rng = np.random.default_rng(4)
    hits = []
    for _ in range(8):
        s = chain(P, 20_000, rng)
        b = bayesian_msm([s], 1, 1.0, [s], 3, n_samples=100)
        for i, name in enumerate(gomodel.STATES):
            lo, hi = np.percentile(b[f"p_{name}"], [2.5, 97.5])
            hits.append(lo <= pi[i] <= hi)
        assert np.isfinite(b["t1"]).all() and b["t1"].min() > 0
    assert np.mean(hits) >= 0.75, np.mean(hits)
