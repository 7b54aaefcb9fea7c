"""The C-alpha Go model of Trp-cage: structure, energy function, dynamics, Q and transitions."""
import numpy as np
import pytest

from lss import gomodel as g
from lss.kinetics import milestone


@pytest.fixture(scope="module")
def native():
    return g.native_structure()


@pytest.fixture(scope="module")
def model():
    return g.GoModel()


def test_native_structure_is_2jof_in_nm(native):
    assert native.n_atoms == 20 and native.n_frames == 1
    seq = "".join(r.code for r in native.topology.residues)
    assert seq == "DAYAQWLKDGGPSSGRPPPS"
    np.testing.assert_allclose(native.xyz[0, 0], [2.2746, 0.6821, -0.3378], atol=1e-6)  # ASP1, A -> nm
    bonds = np.linalg.norm(np.diff(native.xyz[0], axis=0), axis=1)
    assert np.all((bonds > 0.36) & (bonds < 0.40))  # C-alpha virtual bonds, ~0.38 nm


def test_native_contacts_criterion(native):
    c = g.native_contacts()
    assert len(c) == 31
    assert np.all(c[:, 1] - c[:, 0] >= 3)
    d = np.linalg.norm(native.xyz[0][c[:, 0]] - native.xyz[0][c[:, 1]], axis=1)
    assert d.max() < 0.8
    # every pair |i-j| >= 3 below the cutoff is a contact
    assert len(g.native_contacts(cutoff=0.8)) == len(g.native_contacts(cutoff=0.8 + 1e-6))
    assert np.sum(c[:, 1] - c[:, 0] <= 4) == 22  # helical i,i+3 and i,i+4 contacts
    with pytest.raises(ValueError, match="cutoff"):
        g.native_contacts(cutoff=-1)


def test_q_of_native_is_one_and_drops_when_stretched(native):
    assert g.fraction_native_contacts(native.xyz)[0] == 1.0
    assert g.fraction_native_contacts(native.xyz[0] * 1.5)[0] < 0.1
    with pytest.raises(ValueError, match="xyz"):
        g.fraction_native_contacts(np.zeros((3, 19, 3)))


def test_energy_terms_at_native(model, native):
    e = model.energy_terms(native.xyz[0])
    for term in ("bonds", "angles", "dihedrals"):
        assert abs(e[term]) < 1e-8, term  # equilibrium values are the native ones
    assert e["native"] == pytest.approx(-model.eps * 31, rel=1e-9)  # each 12-10 well has depth eps at r = s
    assert 0 <= e["repulsive"] < 0.01
    # many-body term: -eps_MB Nc (Q_s/Nc)^4 with Q_s close to Nc at the native state
    assert -model.eps * 31 <= e["many_body"] < -0.95 * model.eps * 31
    plain = g.GoModel(many_body=0.0)
    assert "many_body" not in plain.energy_terms(native.xyz[0])


def test_forces_are_minus_gradient_of_energy(model, native):
    rng = np.random.default_rng(0)
    x = native.xyz[0].astype(float) + rng.normal(0, 0.03, (20, 3))
    e0, f = model.energy_and_forces(x)
    h = 1e-5
    for _ in range(6):  # random directions: dE/dh = -F . u
        u = rng.normal(size=(20, 3))
        u /= np.linalg.norm(u)
        ep, _ = model.energy_and_forces(x + h * u)
        em, _ = model.energy_and_forces(x - h * u)
        fd = (ep - em) / (2 * h)
        assert fd == pytest.approx(-np.sum(f * u), rel=1e-5, abs=1e-5)
    for i, k in [(0, 0), (7, 1), (13, 2), (19, 1)]:  # single coordinates, including the chain ends
        d = np.zeros((20, 3))
        d[i, k] = h
        fd = (model.energy_and_forces(x + d)[0] - model.energy_and_forces(x - d)[0]) / (2 * h)
        assert fd == pytest.approx(-f[i, k], rel=1e-5, abs=1e-5)


def test_native_is_a_minimum(model, native):
    import openmm

    x0 = native.xyz[0].astype(float)
    e0, f0 = model.energy_and_forces(x0)
    rng = np.random.default_rng(1)
    for _ in range(20):
        e, _ = model.energy_and_forces(x0 + rng.normal(0, 0.02, (20, 3)))
        assert e > e0
    # the only force at the native state comes from the weak non-native repulsion
    _, f_pert = model.energy_and_forces(x0 + rng.normal(0, 0.02, (20, 3)))
    assert np.abs(f0).max() < 0.02 * np.abs(f_pert).max()
    ctx = model._context()
    ctx.setPositions(x0)
    openmm.LocalEnergyMinimizer.minimize(ctx, 1e-3)
    xm = ctx.getState(getPositions=True).getPositions(asNumpy=True)._value
    assert np.sqrt(np.mean(np.sum((xm - x0) ** 2, axis=1))) < 0.005  # nm


def test_count_transitions_on_a_synthetic_signal():
    seg = lambda v, n: [v] * n  # noqa: E731
    q = (seg(0.6, 4)                      # starts between the cores: not a transition
         + seg(0.2, 10) + seg(0.6, 5)     # unfolded, excursion to the barrier, back: none
         + seg(0.2, 5) + seg(0.95, 10)    # fold                                     (1)
         + seg(0.6, 3) + seg(0.9, 3)      # excursion from the folded core: none
         + seg(0.3, 4)                    # unfold                                   (2)
         + seg(0.9, 1)                    # fold, one frame in the core             (3)
         + seg(0.5, 6))                   # ends between the cores: not a transition
    assert g.count_transitions(q) == 3
    assert g.count_transitions(q, lo=0.55, hi=0.85) == 4  # now the final 0.5 frames are in the unfolded core
    s = g.core_states(q)
    assert list(s[:4]) == [-1] * 4 and s[4] == 0 and s[-1] == 1
    assert g.count_transitions([0.6] * 10) == 0
    with pytest.raises(ValueError, match="lo"):
        g.count_transitions(q, lo=0.9, hi=0.5)


def test_count_transitions_of_a_noisy_telegraph_process():
    rng = np.random.default_rng(2)
    n_switch = 41
    dwell = rng.integers(20, 200, size=n_switch + 1)
    states = np.concatenate([np.full(d, i % 2) for i, d in enumerate(dwell)])
    q = np.where(states == 1, 0.95, 0.3) + rng.normal(0, 0.12, len(states))
    # the noise crosses the barrier (0.7) at times but never reaches the other core: the answer is n_switch
    assert np.all(q[states == 0] < 0.85) and np.all(q[states == 1] > 0.45)
    assert np.any(q[states == 0] > 0.7) and np.any(q[states == 1] < 0.7)
    assert g.count_transitions(q) == n_switch
    assert g.count_transitions(q, lo=0.69, hi=0.71) > n_switch  # single cutoff at the barrier over-counts


def test_folded_fraction():
    assert g.folded_fraction([0.1, 0.8, 0.9, 0.5]) == 0.5
    assert g.folded_fraction([np.array([0.9, 0.9]), np.array([0.1, 0.2])]) == 0.5


def test_simulate_is_reproducible_with_model_time():
    info = {}
    a = g.simulate(4000, 100, temperature=300.0, seed=3, platform="Reference", info=info)
    b = g.simulate(4000, 100, temperature=300.0, seed=3, platform="Reference")
    c = g.simulate(4000, 100, temperature=300.0, seed=4, platform="Reference")
    assert a.n_frames == 40 and a.n_atoms == 20
    np.testing.assert_allclose(a.time, np.arange(1, 41) * 100 * 0.02)  # ps of model time
    assert np.array_equal(a.xyz, b.xyz)  # Reference platform: bit for bit
    assert not np.array_equal(a.xyz, c.xyz)
    assert info["platform"] == "Reference" and info["steps_per_s"] > 0
    with pytest.raises(ValueError, match="save_every"):
        g.simulate(100, 200)
    with pytest.raises(ValueError, match="n_steps"):
        g.simulate(0, 1)
    with pytest.raises(ValueError, match="temperature"):
        g.simulate(100, 10, temperature=-1)


def test_low_temperature_stays_folded_high_temperature_unfolds():
    cold = g.fraction_native_contacts(g.simulate(20_000, 100, temperature=200.0, seed=1, platform="Reference"))
    hot = g.fraction_native_contacts(g.simulate(20_000, 100, temperature=450.0, seed=1, platform="Reference",
                                                equilibration_steps=20_000))
    assert cold.mean() > 0.9
    assert hot.mean() < 0.5


def test_smoke_profile_folds_and_unfolds():
    """The smoke setting of notebook 02 (3e5 steps at 300 K) shows a few transitions."""
    t = g.simulate(300_000, 30, temperature=300.0, seed=0, platform="Reference")
    q = g.fraction_native_contacts(t)
    assert g.count_transitions(q) >= 3
    assert 0.1 < g.folded_fraction(q) < 0.9
    # two-state: both cores are populated, the barrier region less than either
    h = np.histogram(q, bins=[0, 0.45, 0.7, 0.85, 1.01])[0] / len(q)
    assert h[0] > 0.2 and h[3] > 0.2 and h[2] < min(h[0], h[3])


def test_choose_platform_measures():
    name = g.choose_platform()
    import openmm

    assert name in [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    assert g._PLATFORM_CACHE["speeds"][name] == max(g._PLATFORM_CACHE["speeds"].values())


def test_simulate_many_parallel_equals_serial():
    par = g.simulate_many(2, 2000, 100, seed=5, n_jobs=2, platform="Reference", equilibration_steps=0)
    ser = g.simulate_many(2, 2000, 100, seed=5, n_jobs=1, platform="Reference", equilibration_steps=0)
    assert len(par) == 2
    for a, b in zip(par, ser):
        assert np.array_equal(a.xyz, b.xyz)
    assert not np.array_equal(par[0].xyz, par[1].xyz)
    assert g.trajectory_seeds(5, 2) == g.trajectory_seeds(5, 3)[:2]


# ------------------------------------------------------------------- proline flip and the three states
def rotate_tail(x, alpha):
    """Native-like structure with beads 18, 19 rotated by ``alpha`` about the axis through beads 16, 17.

    Bonds, angles and the dihedral 16-17-18-19 are unchanged; the dihedral 15-16-17-18 changes by alpha.
    """
    a, b = x[16], x[17]
    k = (b - a) / np.linalg.norm(b - a)
    y = np.array(x, dtype=float)
    for i in (18, 19):
        v = x[i] - a
        y[i] = a + v * np.cos(alpha) + np.cross(k, v) * np.sin(alpha) + k * np.dot(k, v) * (1 - np.cos(alpha))
    return y


def dihedral(x, idx):
    """IUPAC dihedral (rad) of beads ``idx`` of one structure (the convention of OpenMM and mdtraj)."""
    p0, p1, p2, p3 = (np.asarray(x[i], dtype=float) for i in idx)
    b0, b1, b2 = p1 - p0, p2 - p1, p3 - p2
    n1, n2 = np.cross(b0, b1), np.cross(b1, b2)
    return np.arctan2(np.linalg.norm(b1) * np.dot(b0, n2), np.dot(n1, n2))


def hand_native_term(x, eps):
    x0 = g.native_structure().xyz[0].astype(float)
    c = g.native_contacts()
    s = np.linalg.norm(x0[c[:, 0]] - x0[c[:, 1]], axis=1)
    r = np.linalg.norm(x[c[:, 0]] - x[c[:, 1]], axis=1)
    return float(np.sum(eps * (5 * (s / r) ** 12 - 6 * (s / r) ** 10)))


def hand_flip_term(x, flip_barrier, eps):
    x0 = g.native_structure().xyz[0].astype(float)
    dphi = dihedral(x, g.FLIP_DIHEDRAL) - dihedral(x0, g.FLIP_DIHEDRAL)
    return flip_barrier * eps * np.sin(dphi) ** 2


def structures():
    x0 = g.native_structure().xyz[0].astype(float)
    # "noisy": folded, dphi = -0.61 rad. The model's phi0 comes from float32 mdtraj (6e-8 rad off the
    # float64 value), so a tiny dphi would make the relative check of h sin^2(dphi) ill-conditioned.
    rng = np.random.default_rng(2)
    return {"native": x0, "flipped": rotate_tail(x0, np.pi), "stretched": 1.5 * x0,
            "rotated_1rad": rotate_tail(x0, 1.0), "rotated_-2.5rad": rotate_tail(x0, -2.5),
            "noisy": x0 + rng.normal(0, 0.05, x0.shape)}


@pytest.mark.parametrize("name", ["native", "flipped", "stretched", "rotated_1rad", "rotated_-2.5rad", "noisy"])
def test_energy_terms_against_hand_computed_values(model, name):
    x = structures()[name]
    e = model.energy_terms(x)
    assert set(e) == set(g.GoModel.GROUPS)            # the default model has all terms, "flip" included
    flip = hand_flip_term(x, model.flip_barrier, model.eps)
    assert e["flip"] == pytest.approx(flip, rel=1e-6, abs=1e-9)
    assert e["native"] == pytest.approx(hand_native_term(x, model.eps), rel=1e-6)
    if name in ("native", "stretched", "flipped"):
        assert flip < 1e-12                           # a minimum of h sin^2(dphi): dphi = 0 or pi
    if name.startswith("rotated") or name == "flipped":
        alpha = {"flipped": np.pi, "rotated_1rad": 1.0, "rotated_-2.5rad": -2.5}[name]
        assert flip == pytest.approx(12.0 * model.eps * np.sin(alpha) ** 2, rel=1e-9, abs=1e-12)
        # the rotation keeps bonds and angles; only the dihedral 15-16-17-18 moves, by alpha:
        # K1 [1 - cos(alpha)] + K3 [1 - cos(3 alpha)] with K1 = eps, K3 = eps / 2 (3 eps at alpha = pi)
        assert abs(e["bonds"]) < 1e-8 and abs(e["angles"]) < 1e-8
        k_dih = model.eps * ((1 - np.cos(alpha)) + 0.5 * (1 - np.cos(3 * alpha)))
        assert e["dihedrals"] == pytest.approx(k_dih, rel=1e-6)


def test_flip_angle_and_metastable_cores_of_each_basin():
    s = structures()
    assert g.flip_angle(s["native"])[0] == pytest.approx(0.0, abs=1e-5)
    assert abs(g.flip_angle(s["flipped"])[0]) == pytest.approx(np.pi, abs=1e-5)
    assert abs(g.flip_angle(s["stretched"])[0]) < 1e-5                 # scaling keeps every dihedral
    assert abs(g.flip_angle(s["rotated_1rad"])[0]) == pytest.approx(1.0, abs=1e-5)
    assert abs(g.flip_angle(s["rotated_-2.5rad"])[0]) == pytest.approx(2.5, abs=1e-5)
    between = rotate_tail(s["native"], 1.5)
    assert abs(g.flip_angle(between)[0]) == pytest.approx(1.5, abs=1e-5)
    assert g.fraction_native_contacts(s["rotated_1rad"])[0] > g.Q_FOLDED
    xyz = np.stack([s["native"], s["flipped"], s["stretched"], s["rotated_1rad"], between, s["rotated_-2.5rad"]])
    # folded, flipped, unfolded; 1 rad < pi/3 keeps the prolines native (folded); 1.5 rad lies between the
    # proline cores (pi/3, 2 pi/3); 2.5 rad > 2 pi/3 is flipped
    assert g.metastable_cores(xyz).tolist() == [1, 2, 0, 1, -1, 2]
    assert g.STATES == ("unfolded", "folded", "flipped")
    # from precomputed q and flip: the folded/unfolded cores need native prolines, the flipped core takes any Q
    q = np.array([0.9, 0.3, 0.6, 0.9, 0.3, 0.9])
    flip = np.array([0.2, -0.2, 0.0, 1.5, -2.5, 3.0])
    assert g.metastable_cores(q=q, flip=flip).tolist() == [1, 0, -1, -1, 2, 2]


def test_flip_angle_has_the_sign_of_phi_minus_phi0():
    import mdtraj as md

    native = g.native_structure()
    x = rotate_tail(native.xyz[0].astype(float), 1.0)
    t = md.Trajectory(x[None].astype(np.float32), native.topology)
    idx = [list(g.FLIP_DIHEDRAL)]
    dphi = md.compute_dihedrals(t, idx)[0, 0] - md.compute_dihedrals(native, idx)[0, 0]
    assert dphi == pytest.approx(1.0, abs=1e-5)
    assert g.flip_angle(x)[0] == pytest.approx(dphi, abs=1e-5)


def test_without_flip_barrier_the_energy_lacks_exactly_the_flip_term(model):
    plain = g.GoModel(flip_barrier=0)
    s = structures()
    for name in ("flipped", "rotated_1rad", "noisy"):
        x = s[name]
        e0 = plain.energy_terms(x)
        assert "flip" not in e0
        e = model.energy_terms(x)
        for k, v in e0.items():                       # every other term is the same
            assert e[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k
        flip = hand_flip_term(x, model.flip_barrier, model.eps)
        diff = model.energy_and_forces(x)[0] - plain.energy_and_forces(x)[0]
        assert diff == pytest.approx(flip, rel=1e-6, abs=1e-9), name
    assert hand_flip_term(s["rotated_1rad"], 12.0, model.eps) > 10.0    # so the check above is not 0 == 0


def test_a_run_from_the_native_start_visits_every_metastable_state():
    # measured: seeds 0, 1, 2 all visit the three cores within 1e6 steps (seed 1 reaches "flipped" last,
    # at 7.96e5 steps); seed 0 first reaches unfolded at frame 593 and flipped at frame 1450, and its first
    # 5e5 steps hold (1025, 1784, 1433) frames of the three cores (1e6 steps: 3109, 2900, 2019)
    t = g.simulate(500_000, 100, seed=0, platform="Reference")
    lab = g.metastable_cores(t.xyz)
    counts = np.bincount(lab + 1, minlength=4)[1:]
    assert lab[0] == 1                                # starts folded
    assert np.all(counts >= 500), counts              # measured (1025, 1784, 1433) frames
    # transitions: the milestoned sequence enters each core after having been in another one
    s = milestone(lab)
    entries = s[1:][s[1:] != s[:-1]]
    assert set(entries.tolist()) == {0, 1, 2}
