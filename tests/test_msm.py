"""The CK test as a test: block errors, a model MD passes, and implied timescales against the lag."""
import numpy as np

from lss import msm
from test_analysis import chain, exact_timescales, three_state_latent  # noqa: F401  (fixture)


def test_ck_with_block_errors_passes_the_same_chain_and_fails_a_faster_one(three_state_latent):  # noqa: F811
    T, s, centers, lat = three_state_latent
    same = chain(T, 100_000, seed=2)
    fast = chain(T @ T, 50_000, seed=3)
    ck = msm.chapman_kolmogorov([s], [same], lag=1, n_steps=5, n_blocks=5)
    assert ck["reference_err"].shape == (5, 3, 3) and np.all(ck["reference_err"] > 0)
    np.testing.assert_allclose(ck["populations"].sum(), 1.0)
    assert msm.ck_passes(ck, "reference") and msm.ck_passes(ck, "other")
    ck_fast = msm.chapman_kolmogorov([s], [fast], lag=1, n_steps=5, n_blocks=5)
    assert msm.ck_passes(ck_fast, "reference") and not msm.ck_passes(ck_fast, "other")


def test_choose_ck_model_takes_the_shortest_lag_md_passes(three_state_latent):  # noqa: F811
    T, s, centers, lat = three_state_latent
    model, sets, ck, tries = msm.choose_ck_model([lat[:50_000], lat[50_000:]], [1, 2], n_states=9, n_sets=3,
                                                 n_steps=4, random_state=0)
    assert tries[0]["lag"] == 1 and tries[0]["passes"] and len(tries) == 1   # a Markov chain: the first lag
    assert model.lag == 1 and len(sets) == 3 and msm.ck_passes(ck, "reference")


def test_a_hidden_fast_state_makes_md_fail_its_own_ck_test_at_short_lags():
    # 4-state chain observed through a lumping (0, 1 | 2, 3) that hides a slow exchange inside 2-3:
    # the lumped process is not Markovian at lag 1, so no 2-set MSM of it passes at that lag.
    T = np.array([[0.90, 0.10, 0.00, 0.00], [0.05, 0.90, 0.05, 0.00],
                  [0.00, 0.10, 0.89, 0.01], [0.00, 0.00, 0.01, 0.99]])     # measured: 4-21 s.e. off at k = 2-6
    s = chain(T, 400_000, seed=5)
    lumped = np.where(s < 2, 0, 1)
    ck = msm.chapman_kolmogorov([lumped], lag=1, n_steps=6, n_blocks=5)
    assert not msm.ck_passes(ck, "reference")


def test_msm_implied_timescales_against_the_lag_are_flat_for_a_markov_chain(three_state_latent):  # noqa: F811
    T, s, centers, lat = three_state_latent
    res = msm.msm_timescales_vs_lag([s[:50_000], s[50_000:]], [1, 2, 4], k=2, n_blocks=5)
    exact = exact_timescales(T, 2)
    np.testing.assert_allclose(res["timescales"], np.tile(exact, (3, 1)), rtol=0.1)
    assert np.all(res["timescales_err"] > 0) and np.all(res["timescales_err"] < 0.1 * res["timescales"])


def test_count_matrix_equals_a_hand_count():
    from lss.msm import count_matrix

    # lag 1: 0->1, 1->(-1) none, (-1)->1 none, 1->2, 2->2, 2->0 | 2->0, 0->0 ; [1] is too short
    d = [np.array([0, 1, -1, 1, 2, 2, 0]), np.array([1]), np.array([2, 0, 0])]
    np.testing.assert_array_equal(count_matrix(d, 1, 3), [[1, 1, 0], [0, 0, 1], [2, 0, 1]])
    # lag 2: 0->(-1) none, 1->1, (-1)->2 none, 1->2, 2->0 | 2->0
    np.testing.assert_array_equal(count_matrix(d, 2, 3), [[0, 0, 0], [0, 1, 1], [2, 0, 0]])
    np.testing.assert_array_equal(count_matrix(d, 10, 3), np.zeros((3, 3)))
