"""Featurizers against mdtraj's own geometry, the scaler, and streaming over DCD chunks."""
import os

import mdtraj as md
import numpy as np
import pytest

from lss.features import AllAtomFeaturizer, CAFeaturizer, FeatureScaler, iter_featurize
from lss.gomodel import native_structure


def _openmm_test_protein() -> md.Trajectory:
    """Protein atoms of the villin headpiece structure that OpenMM ships (35 residues, 582 atoms)."""
    import openmm.app

    t = md.load(os.path.join(os.path.dirname(openmm.app.__file__), "data", "test.pdb"))
    t = t.atom_slice(t.topology.select("protein"))
    t.unitcell_vectors = None
    return t


def _jiggle(t: md.Trajectory, n: int, sigma: float, seed: int = 0) -> md.Trajectory:
    rng = np.random.default_rng(seed)
    xyz = t.xyz[0][None] + rng.normal(0, sigma, (n, t.n_atoms, 3)).astype(np.float32)
    return md.Trajectory(xyz, t.topology)


@pytest.fixture(scope="module")
def ca_traj():
    return _jiggle(native_structure(), 30, 0.05)


@pytest.fixture(scope="module")
def aa_traj():
    return _jiggle(_openmm_test_protein(), 12, 0.02)


def test_ca_featurizer_matches_mdtraj(ca_traj):
    f = CAFeaturizer()
    X = f.transform(ca_traj)
    assert X.dtype == np.float32 and X.shape == (30, 187) and f.n_features == 187 == len(f.feature_names)
    assert np.all(f.pairs[:, 1] - f.pairs[:, 0] >= 3) and len(f.pairs) == 190 - 19 - 18
    np.testing.assert_allclose(X[:, :153], md.compute_distances(ca_traj, f.pairs), rtol=1e-6)
    quads = [[i, i + 1, i + 2, i + 3] for i in range(17)]
    phi = md.compute_dihedrals(ca_traj, quads)
    np.testing.assert_allclose(X[:, 153::2], np.cos(phi), atol=1e-6)
    np.testing.assert_allclose(X[:, 154::2], np.sin(phi), atol=1e-6)
    assert f.feature_names[0] == "d(ASP1,ALA4)" and f.feature_names[153] == "cos(ca_dih ASP1-ALA4)"
    np.testing.assert_array_equal(f.transform(ca_traj.xyz), X)  # arrays work as well as trajectories


def test_features_are_roto_translation_invariant(ca_traj):
    f = CAFeaturizer()
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:  # a proper rotation (a reflection flips dihedral signs)
        q[:, 0] *= -1
    moved = ca_traj.xyz @ q.T.astype(np.float32) + np.float32([1.0, -2.0, 0.5])
    np.testing.assert_allclose(f.transform(moved), f.transform(ca_traj), atol=2e-5)


def test_all_atom_featurizer_matches_mdtraj(aa_traj):
    f = AllAtomFeaturizer(aa_traj.topology)
    X = f.transform(aa_traj)
    n_phi, n_psi, n_chi = (len(fn(aa_traj)[0]) for fn in (md.compute_phi, md.compute_psi, md.compute_chi1))
    assert (n_phi, n_psi) == (34, 34) and f.n_torsions == {"phi": n_phi, "psi": n_psi, "chi1": n_chi}
    n_res = aa_traj.topology.n_residues
    n_dist = (n_res - 2) * (n_res - 3) // 2
    assert X.shape == (12, 2 * (n_phi + n_psi + n_chi) + n_dist) == (12, f.n_features)
    col = 0
    for fn in (md.compute_phi, md.compute_psi, md.compute_chi1):
        _, ang = fn(aa_traj)
        k = ang.shape[1]
        np.testing.assert_allclose(X[:, col:col + 2 * k:2], np.cos(ang), atol=1e-6)
        np.testing.assert_allclose(X[:, col + 1:col + 2 * k:2], np.sin(ang), atol=1e-6)
        col += 2 * k
    ca = aa_traj.topology.select("name CA")
    pairs = [(ca[i], ca[j]) for i in range(n_res) for j in range(i + 3, n_res)]
    np.testing.assert_allclose(X[:, col:], md.compute_distances(aa_traj, pairs), rtol=1e-6)
    assert f.feature_names[0] == "cos(phi SER2)" and f.feature_names[col] == "d(LEU1,GLU4)"


def test_featurizer_input_checks(aa_traj):
    with pytest.raises(ValueError, match="traj_or_xyz"):
        CAFeaturizer().transform(np.zeros((3, 19, 3)))
    with pytest.raises(ValueError, match="traj_or_xyz"):
        AllAtomFeaturizer(aa_traj.topology).transform(native_structure())
    with pytest.raises(ValueError, match="min_separation"):
        CAFeaturizer(min_separation=0)


def test_scaler_is_fitted_on_training_data_only(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, (5000, 4)).astype(np.float32)
    test = rng.normal(-1.0, 0.5, (3000, 4)).astype(np.float32)
    const = np.ones((10, 4), np.float32)
    sc = FeatureScaler(chunk=777).fit([train, test], fit_on=[0])
    np.testing.assert_allclose(sc.mean_, train.mean(0, dtype=np.float64), rtol=1e-10)
    np.testing.assert_allclose(sc.scale_, train.std(0, dtype=np.float64), rtol=1e-8)
    a, b = sc.transform([train, test])
    assert a.dtype == np.float32
    np.testing.assert_allclose(a.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(a.std(0), 1, atol=1e-5)
    assert np.all(b.mean(0) < -1.5)  # the test data is not re-centred
    np.testing.assert_allclose(sc.inverse_transform(b), test, atol=1e-5)
    sc.save(tmp_path / "s.lss")
    sc2 = FeatureScaler.load(tmp_path / "s.lss")
    np.testing.assert_array_equal(sc2.transform(test), b)
    assert sc2.fit_on_ == [0] and sc2.n_samples_ == 5000
    assert np.all(FeatureScaler().fit(const).scale_ == 1.0)  # constant feature: centred only
    with pytest.raises(ValueError, match="fit_on"):
        FeatureScaler().fit([train], fit_on=[3])
    with pytest.raises(RuntimeError, match="not fitted"):
        FeatureScaler().transform(train)
    with pytest.raises(ValueError, match="NaN"):
        FeatureScaler().fit([np.full((3, 4), np.nan)])


def test_streaming_over_dcd_chunks_equals_in_memory(tmp_path, aa_traj):
    files = []
    for i, sl in enumerate([slice(0, 5), slice(5, 12)]):
        p = tmp_path / f"part-{i:03d}.dcd"
        aa_traj[sl].save_dcd(str(p))
        files.append(p)
    f = AllAtomFeaturizer(aa_traj.topology)
    parts = list(iter_featurize(files, aa_traj.topology, f, chunk=3))
    assert [len(p[0]) for p in parts] == [3, 2, 3, 3, 1]
    X = np.concatenate([p[0] for p in parts])
    ca = np.concatenate([p[1] for p in parts])
    np.testing.assert_allclose(X, f.transform(aa_traj), atol=2e-5)  # DCD stores float32 Angstrom
    np.testing.assert_allclose(ca, aa_traj.xyz[:, aa_traj.topology.select("name CA")], atol=1e-5)
