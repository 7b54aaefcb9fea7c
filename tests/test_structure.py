"""Chain geometry: the fixed-bond projection against exact answers."""
import numpy as np
import torch

from lss.structure import bond_lengths, project_bonds


def _chain(n_frames, n_atoms, rng, bond=0.38):
    steps = rng.standard_normal((n_frames, n_atoms - 1, 3))
    steps *= bond / np.linalg.norm(steps, axis=-1, keepdims=True)
    return np.concatenate([np.zeros((n_frames, 1, 3)), np.cumsum(steps, 1)], 1).astype(np.float32)


def test_projection_reaches_the_lengths_and_leaves_exact_chains_alone():
    rng = np.random.default_rng(0)
    x = _chain(500, 20, rng)
    target = 0.38 + 0.01 * rng.standard_normal((500, 19))
    noisy = x + 0.03 * rng.standard_normal(x.shape).astype(np.float32)   # bonds off by ~0.04 nm
    y = project_bonds(noisy, target)
    assert np.abs(bond_lengths(y) - target).max() < 2e-4
    # an exact chain is a fixed point
    np.testing.assert_allclose(project_bonds(x, np.full(19, 0.38)), x, atol=1e-5)


def test_projection_moves_atoms_little_and_keeps_the_centroid():
    """Equal-mass corrections are internal forces: the centroid never moves, and the displacement is of
    the order of the bond errors (no drift along the chain)."""
    rng = np.random.default_rng(1)
    x = _chain(300, 20, rng)
    noisy = x + 0.02 * rng.standard_normal(x.shape).astype(np.float32)
    y = project_bonds(noisy, np.full(19, 0.38))
    np.testing.assert_allclose(y.mean(1), noisy.mean(1), atol=1e-5)
    move = np.linalg.norm(y - noisy, axis=-1)
    err = np.abs(bond_lengths(noisy) - 0.38)
    assert move.mean() < 1.5 * err.mean() and move.max() < 0.15


def test_torch_in_place_version_matches():
    from lss.structure import project_bonds_

    rng = np.random.default_rng(2)
    x = _chain(10, 5, rng) * 1.1
    t = torch.as_tensor(x.copy())
    project_bonds_(t, torch.full((4,), 0.38))
    np.testing.assert_allclose(t.numpy(), project_bonds(x, np.full(4, 0.38)), atol=1e-6)


def test_nearest_rmsd_is_mdtrajs_minimum_and_zero_for_copies():
    import mdtraj as md

    from lss.structure import _as_mdtraj, nearest_rmsd
    rng = np.random.default_rng(3)
    pool = rng.normal(size=(60, 8, 3)).astype(np.float32)
    x = pool[[4, 17]] + rng.normal(scale=0.05, size=(2, 8, 3)).astype(np.float32)
    brute = [min(md.rmsd(_as_mdtraj(pool, "p"), _as_mdtraj(x, "x"), i)) for i in range(2)]
    assert np.allclose(nearest_rmsd(x, pool), brute, atol=1e-5)
    assert np.allclose(nearest_rmsd(pool[:5], pool), 0.0, atol=1e-3)     # copies of training frames


def test_time_coherence_sees_memory_and_its_absence():
    from lss.structure import time_coherence
    rng = np.random.default_rng(0)
    base = rng.normal(size=(20, 3)).astype(np.float32)
    walk = np.cumsum(rng.normal(scale=0.01, size=(3000, 20, 3)), 0).astype(np.float32)   # slow drift
    x = base + walk - walk.mean(0)
    slow = time_coherence([x], step=1)
    fast = time_coherence([x[rng.permutation(len(x))]], step=1)               # the same frames, no memory
    assert slow["distance_acf"] > 0.9 and abs(fast["distance_acf"]) < 0.1
    assert slow["rmsd_median"] < 0.5 * fast["rmsd_median"]


def test_representatives_are_the_medoids_of_well_separated_groups():
    from lss.structure import pair_rmsd, representatives
    rng = np.random.default_rng(2)
    shapes = rng.normal(size=(2, 10, 3)).astype(np.float32)
    x = np.concatenate([shapes[0] + rng.normal(scale=0.02, size=(60, 10, 3)),
                        shapes[1] + rng.normal(scale=0.02, size=(40, 10, 3))]).astype(np.float32)
    r = representatives(x, k=2, n=100)
    assert r.shape == (2, 10, 3)
    assert pair_rmsd(r[:1], shapes[:1])[0] < 0.05 and pair_rmsd(r[1:], shapes[1:])[0] < 0.05   # largest group first
