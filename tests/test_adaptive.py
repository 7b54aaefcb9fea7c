"""lss.adaptive: restarts bias the raw histogram; transition-based estimates undo the bias.

A four-state reversible Markov chain with a known stationary distribution stands in for the Go model:
state 0 is "unfolded" (where every campaign starts), state 3 the rare one. Each strategy of
lss.adaptive chooses where the next short trajectories start; the reversible MLE of the transitions
(deeptime) recovers the stationary distribution, the raw histogram of the same frames does not.
"""
import numpy as np
import pytest

from lss import adaptive as AD

# a linear chain 0-1-2-3, detailed balance with pi, hops of 0.3 x min(1, pi_j / pi_i)
PI = np.array([0.55, 0.25, 0.15, 0.05])
T = np.zeros((4, 4))
for i in range(3):
    T[i, i + 1] = 0.3 * min(1.0, PI[i + 1] / PI[i])
    T[i + 1, i] = 0.3 * min(1.0, PI[i] / PI[i + 1])
T[np.diag_indices(4)] = 1.0 - T.sum(1)


def _chain(start: int, n_steps: int, rng) -> np.ndarray:
    x = np.empty(n_steps + 1, dtype=np.int32)
    x[0] = start
    for t in range(n_steps):
        x[t + 1] = rng.choice(4, p=T[x[t]])
    return x


def _campaign(strategy: str, rng, n_rounds=6, per_round=60, n_steps=8) -> list[np.ndarray]:
    """Rounds of short chains: round 0 from state 0, then restarts chosen by the strategy."""
    dtrajs = [_chain(0, n_steps, rng) for _ in range(per_round)]
    for _ in range(n_rounds - 1):
        counts = np.bincount(np.concatenate(dtrajs), minlength=4)
        unc = AD.disagreement(AD.bootstrap_rows(dtrajs, 1, 4, 5, rng)) if strategy == "lss" else None
        w = AD.restart_weights(strategy, counts, unc)
        if w is None:
            starts = [0] * per_round
        else:
            starts = [int(dtrajs[i][j]) for i, j in AD.choose_restarts(w, dtrajs, per_round, rng)]
        dtrajs += [_chain(s, n_steps, rng) for s in starts]
    return dtrajs


def test_chain_is_what_the_test_says():
    assert np.allclose(PI @ T, PI) and np.allclose(T.sum(1), 1) and (T >= 0).all()


@pytest.mark.parametrize("strategy", AD.STRATEGIES)
def test_transitions_undo_the_restart_bias(strategy):
    rng = np.random.default_rng(7)
    dtrajs = _campaign(strategy, rng)
    raw = np.bincount(np.concatenate(dtrajs), minlength=4) / sum(map(len, dtrajs))
    est = AD.stationary_from_transitions(dtrajs, 1, 4)
    tv = lambda p: 0.5 * np.abs(p - PI).sum()  # noqa: E731
    # 2,160 frames, about 1,900 transitions: the MLE's own error is a few percent
    assert tv(est) < 0.06, (strategy, est)
    assert tv(raw) > 0.12, (strategy, raw)
    assert tv(raw) > 2.5 * tv(est)


def test_adaptive_restarts_go_where_plain_md_does_not():
    rng = np.random.default_rng(3)
    visits = {s: np.bincount(np.concatenate(_campaign(s, rng)), minlength=4)[3] for s in AD.STRATEGIES}
    assert visits["counts"] > 2 * visits["plain"] and visits["lss"] > 2 * visits["plain"], visits


def test_disagreement_is_largest_where_data_are_few():
    rng = np.random.default_rng(0)
    # many transitions out of state 0, a handful out of state 3
    dtrajs = [_chain(0, 8, rng) for _ in range(200)] + [_chain(3, 1, rng) for _ in range(3)]
    u = AD.disagreement(AD.bootstrap_rows(dtrajs, 1, 4, 20, rng))
    assert u[3] > 3 * u[0], u
    assert np.all((u >= 0) & (u <= 1))
    # a member with no prediction for a state: maximal uncertainty there
    rows = np.stack([np.eye(2), np.array([[1.0, 0.0], [np.nan, np.nan]])])
    assert np.allclose(AD.disagreement(rows), [0.0, 1.0])


def test_restart_weights():
    counts = np.array([100, 10, 0, 1])
    assert AD.restart_weights("plain", counts) is None
    w = AD.restart_weights("counts", counts)
    assert w[2] == 0 and w.argmax() == 3 and np.isclose(w.sum(), 1)
    w = AD.restart_weights("lss", counts, np.array([0.1, 0.3, 0.9, 0.2]))
    assert w[2] == 0 and w.argmax() == 1 and np.isclose(w.sum(), 1)
    with pytest.raises(ValueError, match="uncertainty"):
        AD.restart_weights("lss", counts)
    with pytest.raises(ValueError, match="strategy"):
        AD.restart_weights("random", counts)


def test_free_energy_filled_penalises_missed_bins():
    edges = np.linspace(0, 2, 5)
    x = np.random.default_rng(0).uniform(0, 2, 4000)
    F_ref = AD.free_energy_filled(x, edges)
    assert AD.aligned_rmse_filled(F_ref, F_ref + 3.0, np.ones(4, bool)) < 1e-12
    F_half = AD.free_energy_filled(x[x < 1], edges)           # never visits half the range
    assert np.all(np.isfinite(F_half))
    assert AD.aligned_rmse_filled(F_ref, F_half, np.ones(4, bool)) > 2.0


def test_acf_relaxation_time_of_an_ar1_process():
    rng = np.random.default_rng(1)
    a, n = np.exp(-1 / 20), 200_000                             # t1 = 20 frames
    x = np.empty(n)
    x[0] = 0
    e = rng.normal(size=n) * np.sqrt(1 - a * a)
    for t in range(1, n):
        x[t] = a * x[t - 1] + e[t]
    assert AD.acf_relaxation_time([x], 60, 1, 1.0) == pytest.approx(20, rel=0.1)
    assert AD.acf_relaxation_time([x], 12, 5, 5.0) == pytest.approx(20, rel=0.1)   # the same on a coarser grid


def test_simulate_from_starts_at_the_start_and_repeats():
    from lss.gomodel import native_structure

    x0 = np.repeat(native_structure().xyz[:1], 2, axis=0)
    a = AD.simulate_from(x0, 300, 100, [1, 2])
    b = AD.simulate_from(x0[:1], 300, 100, [1])
    assert len(a) == 2 and a[0].shape == (4, 20, 3)
    assert np.array_equal(a[0][0], x0[0]) and np.array_equal(a[0], b[0])
    assert not np.array_equal(a[0][-1], a[1][-1])
    with pytest.raises(ValueError, match="seeds"):
        AD.simulate_from(x0, 300, 100, [1])
