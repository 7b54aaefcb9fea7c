"""TrpcageDataset, the cached Go-model dataset, and the DESRES loader with each of its errors."""
import json
import os
import shutil

import mdtraj as md
import numpy as np
import pytest

from lss import data, gomodel
from lss.features import AllAtomFeaturizer, CAFeaturizer

SMALL = dict(n_traj=2, n_steps=6000, save_every=100, temperature=300.0, seed=1, n_jobs=1,
             platform="Reference", equilibration_steps=1000)


# ----------------------------------------------------------------------------------- Go-model data
@pytest.fixture(scope="module")
def go_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("go_cache")


@pytest.fixture(scope="module")
def go_ds(go_cache):
    return data.make_go_dataset(cache_dir=go_cache, fit_on=[0], **SMALL)


def test_go_dataset_contents(go_ds):
    ds = go_ds
    assert ds.lengths == [60, 60] and len(ds.features) == 2 and len(ds.q) == 2
    assert ds.xyz[0].shape == (60, 20, 3) and ds.xyz[0].dtype == np.float32
    assert ds.features[0].shape == (60, 187) and ds.features[0].dtype == np.float32
    assert ds.feature_names == CAFeaturizer().feature_names
    assert ds.frame_time == pytest.approx(100 * 0.02 / 1000) and ds.time_unit == "ns"
    assert "model time" in ds.meta["time"]
    # scaled features: training trajectory (fit_on=[0]) standardised, the other one not exactly
    np.testing.assert_allclose(ds.features[0].mean(0), 0, atol=1e-4)
    assert ds.meta["scaler_fit_on"] == [0] and ds.scaler.n_samples_ == 60
    raw = CAFeaturizer().transform(ds.xyz[1])
    np.testing.assert_allclose(ds.scaler.inverse_transform(ds.features[1]), raw, atol=1e-4)
    np.testing.assert_allclose(ds.q[0], gomodel.fraction_native_contacts(ds.xyz[0]))
    trajs = ds.to_mdtraj()
    assert trajs[1].n_atoms == 20 and trajs[1].time[1] == pytest.approx(2.0)  # ps


def test_go_cache_files_and_metadata(go_ds, go_cache):
    d = go_cache / os.path.basename(go_ds.meta["cache_dir"])
    names = sorted(p.name for p in d.iterdir())
    assert names == ["ca.pdb", "meta.json", "traj_000.dcd", "traj_001.dcd"]
    meta = json.loads((d / "meta.json").read_text())
    for k in ("model_params", "temperature_K", "n_steps", "save_every", "frame_time_ps", "seed",
              "trajectory_seeds", "sha256", "content_hash", "platform", "wall_s"):
        assert k in meta, k
    assert meta["model_params"]["eps"] == gomodel.GoModel().eps and meta["frame_time_ps"] == 2.0
    assert md.load(str(d / "traj_000.dcd"), top=str(d / "ca.pdb")).n_frames == 60


def test_go_cache_is_reused_and_checked(go_ds, go_cache):
    again = data.make_go_dataset(cache_dir=go_cache, fit_on=[0], **SMALL)
    assert again.meta["cached"] and not go_ds.meta["cached"]
    for a, b in zip(go_ds.xyz + go_ds.features, again.xyz + again.features):
        np.testing.assert_array_equal(a, b)
    other = data.make_go_dataset(cache_dir=go_cache, **{**SMALL, "seed": 2, "n_traj": 1})
    assert other.meta["cache_dir"] != go_ds.meta["cache_dir"]
    # a damaged cache is detected by its hash and simulated again, to the same result
    dcd = os.path.join(go_ds.meta["cache_dir"], "traj_001.dcd")
    with open(dcd, "r+b") as f:
        f.seek(-20, 2)
        f.write(b"\0" * 20)
    with pytest.warns(UserWarning, match="simulating again"):
        redo = data.make_go_dataset(cache_dir=go_cache, fit_on=[0], **SMALL)
    assert not redo.meta["cached"]
    np.testing.assert_array_equal(redo.xyz[1], go_ds.xyz[1])


def test_dataset_save_load_roundtrip(go_ds, tmp_path):
    go_ds.save(tmp_path / "ds")
    back = data.TrpcageDataset.load(tmp_path / "ds")
    assert back.lengths == go_ds.lengths and back.feature_names == go_ds.feature_names
    assert back.frame_time == go_ds.frame_time and back.time_unit == "ns" and back.meta["source"] == "go"
    for a, b in zip(go_ds.xyz + go_ds.features + go_ds.q, back.xyz + back.features + back.q):
        np.testing.assert_array_equal(a, b)
    assert back.topology.n_atoms == 20
    np.testing.assert_array_equal(back.scaler.mean_, go_ds.scaler.mean_)
    mm = data.TrpcageDataset.load(tmp_path / "ds", mmap=True)
    assert isinstance(mm.features[0], np.memmap)


def test_dataset_load_missing_names_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="02_trpcage_data"):
        data.TrpcageDataset.load(tmp_path / "nothing")


# ------------------------------------------------------------------------------------- DESRES data
def _protein() -> md.Trajectory:
    import openmm.app

    t = md.load(os.path.join(os.path.dirname(openmm.app.__file__), "data", "test.pdb"))
    t = t.atom_slice(t.topology.select("protein"))
    t.unitcell_vectors = None
    return t


@pytest.fixture(scope="module")
def desres(tmp_path_factory):
    """A small all-atom trajectory in the DESRES layout: DESRES-Trajectory_2JOF-0-protein/2JOF-0-protein/
    2JOF-0-protein-000.dcd ... (3 chunks of 6, 6 and 4 frames), from the protein that OpenMM ships,
    perturbed frame by frame; plus the PDB topology and the same data as C-alpha chunks."""
    root = tmp_path_factory.mktemp("desres")
    prot = _protein()
    rng = np.random.default_rng(0)
    xyz = prot.xyz[0][None] + np.cumsum(rng.normal(0, 0.01, (16, prot.n_atoms, 3)), axis=0).astype(np.float32)
    traj = md.Trajectory(xyz, prot.topology)
    inner = root / "DESRES-Trajectory_2JOF-0-protein" / "2JOF-0-protein"
    inner.mkdir(parents=True)
    ca_dir = root / "2JOF-0-c-alpha"
    ca_dir.mkdir()
    ca = prot.topology.select("name CA")
    for i, sl in enumerate([slice(0, 6), slice(6, 12), slice(12, 16)]):
        traj[sl].save_dcd(str(inner / f"2JOF-0-protein-{i:03d}.dcd"))
        traj[sl].atom_slice(ca).save_dcd(str(ca_dir / f"2JOF-0-c-alpha-{i:03d}.dcd"))
    prot.save_pdb(str(root / "protein.pdb"))
    return {"root": root, "inner": inner, "pdb": root / "protein.pdb", "traj": traj, "ca_dir": ca_dir}


def test_load_desres_finds_chunks_in_order(desres):
    for where in (desres["root"], desres["inner"], desres["inner"].parent):
        src = data.load_desres(where, desres["pdb"])
        assert src.directory == desres["inner"]
        assert [p.name for p in src.files] == [f"2JOF-0-protein-{i:03d}.dcd" for i in range(3)]
        assert src.frame_counts == [6, 6, 4] and src.n_frames == 16
    t = src.load()
    np.testing.assert_allclose(t.xyz, desres["traj"].xyz, atol=1e-5)
    np.testing.assert_allclose(t.time, np.arange(16) * 200.0)  # ps, set explicitly
    times = np.concatenate([c.time for c in src.iterload(chunk=4)])
    np.testing.assert_allclose(times, np.arange(16) * 200.0)


def test_featurize_desres_streams_the_all_atom_features(desres):
    traj = desres["traj"]
    ca = traj.topology.select("name CA")
    native = traj.xyz[0, ca]
    ds = data.featurize_desres(desres["root"], desres["pdb"], chunk=4, native_xyz=native)
    f = AllAtomFeaturizer(traj.topology)
    assert ds.lengths == [16] and ds.feature_names == f.feature_names and ds.meta["source"] == "desres"
    assert ds.frame_time == pytest.approx(0.2) and ds.time_unit == "ns"
    np.testing.assert_allclose(ds.scaler.inverse_transform(ds.features[0]), f.transform(traj), atol=1e-4)
    np.testing.assert_allclose(ds.xyz[0], traj.xyz[:, ca], atol=1e-5)
    assert ds.topology.n_atoms == len(ca) and ds.q[0][0] == 1.0
    strided = data.featurize_desres(desres["root"], desres["pdb"], chunk=4, stride=2, native_xyz=native)
    assert strided.lengths == [3 + 3 + 2] and strided.frame_time == pytest.approx(0.4)
    keep = [0, 2, 4, 6, 8, 10, 12, 14]  # every 2nd frame of each chunk (6, 6, 4 frames)
    np.testing.assert_allclose(strided.xyz[0], ds.xyz[0][keep])
    with pytest.raises(ValueError, match="20"):  # Q against 2JOF needs Trp-cage's 20 C-alphas
        data.featurize_desres(desres["root"], desres["pdb"])


def test_featurize_desres_c_alpha_chunks(desres):
    ca = desres["traj"].topology.select("name CA")
    ds = data.featurize_desres(desres["ca_dir"], desres["pdb"], atoms="c-alpha", native_xyz=desres["traj"].xyz[0, ca])
    assert ds.meta["featurizer"]["class"] == "CAFeaturizer" and ds.lengths == [16]
    np.testing.assert_allclose(ds.xyz[0], desres["traj"].xyz[:, ca], atol=1e-5)


def _copy(desres, tmp_path):
    d = tmp_path / "2JOF-0-protein"
    shutil.copytree(desres["inner"], d)
    return d


def test_desres_missing_directory_says_how_to_get_the_data(tmp_path, desres):
    with pytest.raises(FileNotFoundError) as e:
        data.load_desres(tmp_path / "nowhere", desres["pdb"])
    msg = str(e.value)
    assert "nowhere" in msg and "D. E. Shaw Research" in msg and "2JOF-0-protein-000.dcd" in msg


def test_desres_no_chunks(tmp_path, desres):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="2JOF-0-protein-000.dcd"):
        data.load_desres(tmp_path, desres["pdb"])


def test_desres_missing_chunks(tmp_path, desres):
    d = _copy(desres, tmp_path)
    with pytest.raises(FileNotFoundError, match="expected 5.*2JOF-0-protein-003.dcd"):
        data.load_desres(d, desres["pdb"], n_chunks=5)


def test_desres_gap_in_numbering(tmp_path, desres):
    d = _copy(desres, tmp_path)
    (d / "2JOF-0-protein-001.dcd").unlink()
    with pytest.raises(ValueError, match="gap.*2JOF-0-protein-001.dcd is missing"):
        data.load_desres(d, desres["pdb"])
    (d / "2JOF-0-protein-000.dcd").unlink()
    with pytest.raises(ValueError, match="2JOF-0-protein-000.dcd is missing"):
        data.load_desres(d, desres["pdb"])


def test_desres_truncated_dcd(tmp_path, desres):
    d = _copy(desres, tmp_path)
    p = d / "2JOF-0-protein-001.dcd"
    raw = p.read_bytes()
    p.write_bytes(raw[:-1000])
    with pytest.raises(ValueError, match=r"2JOF-0-protein-001.dcd is truncated.*6 frames.*5 complete"):
        data.load_desres(d, desres["pdb"])
    p.write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match="001.dcd: not a DCD"):
        data.load_desres(d, desres["pdb"])


def test_desres_topology_mismatch_and_missing_pdb(tmp_path, desres):
    wrong = tmp_path / "wrong.pdb"
    desres["traj"][0].atom_slice(np.arange(100)).save_pdb(str(wrong))
    with pytest.raises(ValueError, match=r"mismatch.*protein-000.dcd holds 582 atoms.*wrong.pdb has 100"):
        data.load_desres(desres["inner"], wrong)
    with pytest.raises(FileNotFoundError, match="README"):
        data.load_desres(desres["inner"], tmp_path / "none.pdb")
    with pytest.raises(ValueError, match="atoms"):
        data.load_desres(desres["inner"], desres["pdb"], atoms="heavy")


def test_desres_atom_order_mismatch(tmp_path, desres):
    d = tmp_path / "2JOF-0-protein"
    d.mkdir()
    traj = desres["traj"]
    perm = np.random.default_rng(0).permutation(traj.n_atoms)  # same atom count, wrong order
    md.Trajectory(traj.xyz[:, perm], traj.topology).save_dcd(str(d / "2JOF-0-protein-000.dcd"))
    with pytest.raises(ValueError, match="topology mismatch.*atom order"):
        data.load_desres(d, desres["pdb"])


def test_a_second_process_waits_for_the_one_simulating_the_same_data(tmp_path, capsys):
    """simulate_go_cached's lock: a live simulating process is waited for; a dead one's lock is ignored."""
    import subprocess
    import sys
    import time

    d = tmp_path / "go_x"
    d.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    (d / data.LOCK_NAME).write_text(str(other.pid))
    t0 = time.perf_counter()
    data._wait_for_other_simulation(d, poll_s=0.1)
    assert time.perf_counter() - t0 > 0.5 and other.poll() is not None, "returned only once the other had exited"
    assert f"waiting for process {other.pid}" in capsys.readouterr().out
    t0 = time.perf_counter()
    data._wait_for_other_simulation(d, poll_s=0.1)   # the lock of a finished process
    assert time.perf_counter() - t0 < 0.5


def test_a_failed_simulation_leaves_no_lock_behind(tmp_path, monkeypatch):
    """A kernel whose simulation raised stays alive: its lock must not make other processes wait for it."""
    def boom(*a, **k):
        raise RuntimeError("simulation failed")

    monkeypatch.setattr(gomodel, "simulate_many", boom)
    with pytest.raises(RuntimeError, match="simulation failed"):
        data.simulate_go_cached(1, 1000, 100, 300.0, 0, cache_dir=tmp_path)
    assert not list(tmp_path.rglob(data.LOCK_NAME))
