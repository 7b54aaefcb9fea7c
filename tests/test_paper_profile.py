"""The paper path must not rot: every notebook, paper settings, a tiny synthetic DESRES-layout set."""
import mdtraj as md
import numpy as np
import pytest

import desres_fixture as fixtures
from lss import paths, reproduce
from lss.data import load_desres
from lss.features import AllAtomFeaturizer


def test_paper_fixture_extends_the_paper_profile_and_only_shrinks_sizes():
    paper = reproduce.load_params("paper")
    fixture = reproduce.load_params(params_file=paths.params_file("paper-fixture"))
    assert fixture["common"]["profile"] == "paper-fixture"
    # the code paths of the paper profile: DESRES all-atom data, the paper's network shapes
    for key in ("source", "desres_atoms", "frame_time_ps"):
        assert fixture["02_trpcage_data"][key] == paper["02_trpcage_data"][key]
    assert fixture["02_trpcage_data"]["source"] == "desres"
    assert fixture["04_mdn"]["n_kernels"] == paper["04_mdn"]["n_kernels"] == 24
    assert paper["04_mdn"]["lag"] is None            # null: the SRV lag (no sentinel values)
    for step in paper:
        assert set(paper[step]) <= set(fixture[step]), f"{step}: the fixture lost paper keys"


def test_synthetic_desres_set_has_the_paper_features(tmp_path):
    info = fixtures.write_synthetic_desres(tmp_path, n_steps=20_000, save_every=100, n_chunks=2)
    data = load_desres(info["desres_dir"], info["desres_pdb"])
    traj = data.load()
    assert traj.n_frames == info["n_frames"] == 200 and traj.n_residues == 20
    assert [r.name for r in traj.topology.residues] == fixtures.SEQUENCE
    # phi/psi for 19 residue pairs each, chi1 for the 15 residues that have one (not Gly, Ala)
    assert md.compute_phi(traj)[1].shape[1] == 19 and md.compute_psi(traj)[1].shape[1] == 19
    assert md.compute_chi1(traj)[1].shape[1] == 15
    feats = AllAtomFeaturizer(traj.topology).transform(traj)
    assert feats.shape == (200, 2 * (19 + 19 + 15) + 153) and np.all(np.isfinite(feats))
    # the C-alpha trace is the Go model's: consecutive C-alphas 0.38 nm apart
    ca = traj.atom_slice(traj.topology.select("name CA"))
    bonds = np.linalg.norm(np.diff(ca.xyz, axis=1), axis=-1)
    assert abs(bonds.mean() - 0.38) < 0.01


@pytest.mark.slow
def test_every_notebook_runs_with_the_paper_profile_on_the_fixture():
    out = paths.run_dir("paper-fixture", "desres")
    if not (out / "2JOF-0-protein.pdb").exists():
        fixtures.write_synthetic_desres(out, n_steps=100_000, save_every=100, n_chunks=3, seed=1)
    # every notebook whose code path the paper's setting changes: all but 01 (the four-well model has no data
    # source and no paper-only layer; its paper parameters are sizes, which the smoke run already covers)
    steps = [s for s in reproduce.available_steps() if s != "01_four_well"]
    ran = reproduce.run(params_file=str(paths.params_file("paper-fixture")), only=steps, force=True, log=print)
    assert list(ran) == steps
    assert (paths.run_dir("paper-fixture", "03_srv") / "srv.lss").exists()
