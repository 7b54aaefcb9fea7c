"""The four-well potential, its Brownian dynamics and the exact reference."""
import numpy as np
import pytest

from lss import fourwell as fw


def test_potential_matches_paper_formula_and_not_deeptime_prefactor():
    x = np.array([-0.9, -0.5, 0.0, 0.3, 0.5, 1.0])
    expected = 2 * (x**8 + 0.8 * np.exp(-80 * x**2) + 0.2 * np.exp(-80 * (x - 0.5) ** 2)
                    + 0.5 * np.exp(-40 * (x + 0.5) ** 2))
    np.testing.assert_allclose(fw.potential(x), expected, rtol=1e-12)
    # four wells: local minima of V on a fine grid
    g = np.linspace(-1.2, 1.2, 20001)
    v = fw.potential(g)
    minima = np.nonzero((v[1:-1] < v[:-2]) & (v[1:-1] < v[2:]))[0]
    assert len(minima) == 4


def test_force_is_minus_gradient_by_finite_differences():
    x = np.linspace(-1.2, 1.2, 241)
    h = 1e-6
    fd = -(fw.potential(x + h) - fw.potential(x - h)) / (2 * h)
    np.testing.assert_allclose(fw.force(x), fd, rtol=1e-6, atol=1e-5)
    assert fw._force_scalar(0.123) == pytest.approx(float(fw.force(0.123)), rel=1e-12)


@pytest.fixture(scope="module")
def ref():
    return fw.ExactReference(lag=100, n_bins=100)


def test_exact_reference_is_a_proper_transition_operator(ref):
    T = ref.T
    assert np.all(T >= 0)
    np.testing.assert_allclose(T.sum(axis=1), 1, atol=1e-10)
    np.testing.assert_allclose(ref.pi @ T, ref.pi, atol=1e-12)
    np.testing.assert_allclose(ref.T_bins.sum(axis=1), 1, atol=1e-10)
    np.testing.assert_allclose(ref.p_bins @ ref.T_bins, ref.p_bins, atol=1e-10)


def test_exact_reference_is_close_to_detailed_balance_and_boltzmann(ref):
    # The continuous-time SQRA operator is reversible w.r.t. exp(-V) exactly;
    x = fw.grid(300, -1.3, 1.3)
    Ts = fw.sqra_transition_matrix(x, t=0.1)
    p = fw.boltzmann(x)
    flux = p[:, None] * Ts
    np.testing.assert_allclose(flux, flux.T, atol=1e-12)
    np.testing.assert_allclose(fw.stationary_distribution(Ts), p, atol=1e-8)
    # the Euler-Maruyama chain is reversible and Boltzmann only up to its O(h) bias (h = 1e-3).
    flux = ref.pi[:, None] * ref.T
    assert np.abs(flux - flux.T).sum() < 0.02
    boltz_bins = fw.boltzmann(ref.x).reshape(100, -1).sum(1)
    assert fw.total_variation(boltz_bins, ref.p_bins) < 0.015
    # and their slow timescales agree (time step 1e-3: 100 steps = 0.1 time units)
    its_sqra = fw.implied_timescales(Ts, 100, 3)
    np.testing.assert_allclose(its_sqra, ref.timescales, rtol=0.03)


def test_exact_timescales_resolve_the_grid(ref):
    fine = fw.ExactReference(lag=100, n_bins=100, refine=20)
    np.testing.assert_allclose(fine.timescales, ref.timescales, rtol=1e-3)
    assert ref.timescales[0] > 3 * ref.timescales[1] > 0


def test_bd_long_run_histogram_matches_exact_and_boltzmann(ref):
    # 400 independent walkers, 30 slowest relaxation times each, positions every 50 steps
    x = fw.simulate(15_000, n_walkers=400, random_state=1, save_every=50)[:, 40:]
    h = ref.histogram(x)
    assert fw.total_variation(h, ref.p_bins) < 0.03
    assert fw.total_variation(h, fw.boltzmann(ref.x).reshape(100, -1).sum(1)) < 0.035
    # the scalar loop and the vectorised loop integrate the same scheme: same statistics
    x1 = fw.simulate(600_000, random_state=2)
    assert fw.total_variation(ref.histogram(x1), ref.p_bins) < 0.05


def test_bd_is_seeded():
    a = fw.simulate(1000, random_state=5)
    b = fw.simulate(1000, random_state=5)
    c = fw.simulate(1000, random_state=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="n_steps"):
        fw.simulate(0)


def test_conditional_density_error_is_zero_for_the_exact_density_and_positive_otherwise(ref):
    cell = lambda v: np.clip(np.rint((v - ref.x[0]) / ref.dx).astype(int), 0, len(ref.x) - 1)
    exact = lambda a, b: np.log(np.maximum(ref.T[cell(a), cell(b)] / ref.dx, 1e-300))
    assert fw.conditional_density_error(ref, exact, (-1.0, 1.0)) < 1e-6
    gauss = lambda a, b: -0.5 * (b - a) ** 2 / 0.05 - 0.5 * np.log(2 * np.pi * 0.05)
    assert fw.conditional_density_error(ref, gauss, (-1.0, 1.0)) > 0.2
