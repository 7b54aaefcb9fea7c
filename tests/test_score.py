"""lss.score: one scorecard for any generated ensemble, each metric beside MD's own noise.

The MD here is a toy with a known answer: a 20-bead C-alpha chain built from its internal
coordinates (bonds 0.38 nm, angles 1.6 rad, 17 torsions), whose torsions 4-11 follow a hidden
two-state Markov switch (probability 0.004 per frame, so dwells of ~250 frames) smoothed by an AR(1)
coordinate, plus fast noise. Candidates: an independent run of the same process, the reference
shuffled in time, and the independent run with one torsion shifted by a known angle.

The yardstick is a long run (the "converged reference", 8x the candidates' length); the floor is
independent MD of the candidates' length, so an independent run of that length scores about 1.
"""
import numpy as np
import pytest

from lss import structure
from lss.score import Ensemble, js_distance, score

N_ATOMS, SHIFTED, SHIFT = 20, 2, 1.0


def chain_from_internal(bonds, angles, torsions):
    """Cartesian chain (n, N, 3) nm from bonds (n, N-1) nm, angles (n, N-2) rad, torsions (n, N-3) rad."""
    n, N = len(bonds), bonds.shape[1] + 1
    x = np.zeros((n, N, 3))
    x[:, 1, 0] = bonds[:, 0]
    x[:, 2, 0] = bonds[:, 0] - bonds[:, 1] * np.cos(angles[:, 0])
    x[:, 2, 1] = bonds[:, 1] * np.sin(angles[:, 0])
    for i in range(3, N):
        a, b, c = x[:, i - 3], x[:, i - 2], x[:, i - 1]
        bc = (c - b) / np.linalg.norm(c - b, axis=1, keepdims=True)
        nv = np.cross(b - a, bc)
        nv /= np.linalg.norm(nv, axis=1, keepdims=True)
        r, t, p = bonds[:, i - 1, None], angles[:, i - 2, None], torsions[:, i - 3, None]
        x[:, i] = c - r * np.cos(t) * bc + r * np.sin(t) * (np.cos(p) * np.cross(nv, bc) + np.sin(p) * nv)
    return x.astype(np.float32)


def toy_md(n_traj=2, n_frames=20_000, seed=0, shift=None):
    """Stack (n_traj, n_frames, 20, 3) nm of the two-state toy; ``shift=(i, rad)`` adds to torsion i."""
    rng = np.random.default_rng(seed)
    nt = N_ATOMS - 3
    t0 = np.full(nt, 0.9)
    dt = np.zeros(nt)
    dt[4:12] = -2.4
    out = []
    for _ in range(n_traj):
        s = np.cumsum(rng.random(n_frames) < 0.004) % 2
        e = rng.standard_normal(n_frames) * 0.08
        en = rng.standard_normal((n_frames, nt)) * 0.12
        y, noise = np.zeros(n_frames), np.zeros((n_frames, nt))
        for t in range(1, n_frames):
            y[t] = 0.8 * y[t - 1] + 0.2 * s[t] + e[t]
            noise[t] = 0.5 * noise[t - 1] + en[t]
        tors = t0 + y[:, None] * dt + noise
        if shift is not None:
            tors[:, shift[0]] += shift[1]
        ang = 1.6 + 0.05 * rng.standard_normal((n_frames, N_ATOMS - 2))
        bnd = 0.38 + 0.005 * rng.standard_normal((n_frames, N_ATOMS - 1))
        out.append(chain_from_internal(bnd, ang, tors))
    return np.stack(out)


REF_FRAMES, TRAIN_FRAMES = 80_000, 10_000


@pytest.fixture(scope="module")
def card():
    ref = toy_md(n_frames=REF_FRAMES, seed=0)
    md = toy_md(n_frames=TRAIN_FRAMES, seed=1)
    rng = np.random.default_rng(5)
    shuffled = np.stack([x[rng.permutation(len(x))] for x in md])
    cands = {"training MD": Ensemble(md, 1.0, "ps", name="training MD"),
             "independent": Ensemble(toy_md(n_frames=TRAIN_FRAMES, seed=2), 1.0, "ps", name="independent"),
             "shuffled": Ensemble(shuffled, 1.0, "ps", name="shuffled"),
             "shifted": Ensemble(toy_md(n_frames=TRAIN_FRAMES, seed=2, shift=(SHIFTED, SHIFT)), 1.0, "ps", name="shifted"),
             "itself": Ensemble(ref, 1.0, "ps", name="itself")}
    return score(Ensemble(ref, 1.0, "ps", name="reference"), cands, n_states=20, n_boot=200, random_state=0,
                 training="training MD", msm_size=(2, TRAIN_FRAMES))


KINETIC = ("its", "tdecor_tic1", "tdecor_latent1", "mfpt_lo_hi", "mfpt_hi_lo", "flux", "ck")


def test_toy_torsions_are_what_was_built():
    x = toy_md(1, 200, seed=3, shift=(SHIFTED, SHIFT))[0]
    y = toy_md(1, 200, seed=3)[0]
    d = np.angle(np.exp(1j * (structure.ca_torsions(x) - structure.ca_torsions(y))))
    assert np.allclose(d[:, SHIFTED], SHIFT, atol=1e-4)
    assert np.allclose(np.delete(d, SHIFTED, axis=1), 0, atol=1e-4)
    assert np.allclose(structure.bond_lengths(x), structure.bond_lengths(y), atol=1e-5)


def test_js_distance_natural_log_bounds():
    assert js_distance([1, 0], [0, 1]) == pytest.approx(np.sqrt(np.log(2)))
    assert js_distance([3, 1, 2], [3, 1, 2]) == 0.0


def test_independent_md_of_the_training_length_scores_about_one(card):
    """What the floor means: an independent run of the training length sits at ~1 on every metric."""
    for name in ("independent", "training MD"):
        r = card.ratio(name)
        assert 0.6 < np.nanmedian(list(r.values())) < 1.6, (name, r)
        assert max(r.values()) < 4.0, (name, r)
    assert card.meta["floor_frames"] == 2 * TRAIN_FRAMES and card.details["equal-length MD"]["n_pieces"] == 8
    assert all(v > 0 for v in card.floor.values()), card.floor


def test_the_reference_scored_against_itself_is_zero(card):
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in card.rows["itself"].values()), card.rows["itself"]


def test_time_shuffled_md_keeps_the_ensemble_and_fails_every_kinetic_metric(card):
    r, r_md = card.ratio("shuffled"), card.ratio("training MD")
    for k, v in r.items():
        if k in KINETIC:
            assert v > 5.0, (k, v)
        else:
            assert v == pytest.approx(r_md[k], rel=1e-6, abs=1e-9), (k, v)   # the very same frames
    passes = card.passes("shuffled")
    assert not any(passes[k] for k in KINETIC)


def test_the_msm_baseline_replays_training_frames(card):
    """Its frames are training frames: every ensemble number sits near the training MD's, none far better."""
    r_msm, r_md = card.ratio("MSM baseline"), card.ratio("training MD")
    for k in ("js_torsions", "js_distances", "js_rg", "js_bonds", "js_angles"):
        assert r_msm[k] > 0.5 * r_md[k], (k, r_msm[k], r_md[k])
    assert card.meta["msm_from"] == "training MD"


def test_a_shifted_torsion_moves_that_js_distance_and_no_other(card):
    plain = np.asarray(card.details["independent"]["js_torsions"])
    shifted = np.asarray(card.details["shifted"]["js_torsions"])
    floor = np.asarray(card.details["equal-length MD"]["js_torsions"])
    assert shifted[SHIFTED] > 0.5 and shifted[SHIFTED] > 10 * floor[SHIFTED]
    others = np.delete(np.arange(len(plain)), SHIFTED)
    assert np.allclose(shifted[others], plain[others], atol=1e-3)
    for k in ("js_bonds", "js_angles"):
        assert card.rows["shifted"][k] == pytest.approx(card.rows["independent"][k], abs=1e-3)


def test_card_outputs(card, tmp_path):
    paths = card.save(tmp_path)
    import json

    doc = json.loads(paths["json"].read_text())
    assert doc["metrics"]["js_torsions"]["unit"] == "1" and "natural log" in doc["metrics"]["js_torsions"]["how"]
    assert set(doc["rows"]) == {"equal-length MD", "MSM baseline", "training MD", "independent", "shuffled",
                                "shifted", "itself"}
    assert "| metric |" in paths["markdown"].read_text()
    assert paths["figure"].stat().st_size > 10_000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The toy MD as two DCD files, a candidate as two XTC files (times stored), and their PDB."""
    import mdtraj as md

    d = tmp_path_factory.mktemp("score_cli")
    top = structure._ca_topology(N_ATOMS)
    md.Trajectory(toy_md(1, 1, seed=9)[0], top).save_pdb(str(d / "top.pdb"))
    out = {"pdb": d / "top.pdb", "dcd": [], "xtc": []}
    for kind, seed in (("dcd", 0), ("xtc", 1)):
        for i, x in enumerate(toy_md(2, 6000, seed=seed)):
            p = d / f"{kind}_{i}.{kind}"
            md.Trajectory(x, top, time=np.arange(len(x)) * 2.0).save(str(p))
            out[kind].append(p)
    return out


def test_cli_reads_dcd_and_xtc_with_a_pdb(files, tmp_path):
    import json

    from lss.cli import main

    rc = main(["score", "--top", str(files["pdb"]), "--reference", *map(str, files["dcd"]), "--dt", "MD=2ps",
               "--candidate", "gen", *map(str, files["xtc"]), "--n-states", "10", "--out", str(tmp_path)])
    assert rc == 0
    doc = json.loads((tmp_path / "score.json").read_text())
    assert doc["meta"]["dt"] == pytest.approx(2.0) and doc["meta"]["time_unit"] == "ps"
    assert doc["meta"]["n_frames"]["gen"] == 12_000
    assert doc["rows"]["gen"]["js_torsions"]["ratio_to_floor"] < 4     # the same process
    assert (tmp_path / "score.png").exists() and (tmp_path / "score.md").exists()


def test_cli_refuses_a_file_without_time_step_unless_given(files, tmp_path, capsys):
    from lss.cli import main

    args = ["score", "--top", str(files["pdb"]), "--reference", *map(str, files["xtc"]),
            "--candidate", "gen", *map(str, files["dcd"]), "--out", str(tmp_path)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "DCD file, which stores no time step" in err and "--dt gen=" in err
    with pytest.raises(ValueError, match="stores no time step"):
        Ensemble.from_files(files["dcd"], files["pdb"], name="gen")
    ens = Ensemble.from_files(files["dcd"], files["pdb"], frame_time=2.0, name="gen")
    assert ens.frame_time_ps == 2.0 and ens.n_frames == 12_000
    assert Ensemble.from_files(files["xtc"], files["pdb"]).frame_time_ps == pytest.approx(2.0)
    import mdtraj as md

    h5 = tmp_path / "a.h5"
    md.load(str(files["xtc"][0]), top=str(files["pdb"])).save_hdf5(str(h5))
    assert Ensemble.from_files(h5).frame_time_ps == pytest.approx(2.0)     # HDF5 stores topology and times


def test_encoder_gives_the_latent_space_and_candidates_stay_untouched():
    """An encoder maps structures to latent points for ensembles without them; frame times on a common grid."""
    md = toy_md(1, 4000, seed=0)

    class FirstTorsions:   # a stand-in for lss.features.Encoder: latent = the two switching torsions
        def transform(self, xyz):
            return structure.ca_torsions(xyz)[:, 4:6]

    cand = Ensemble(toy_md(1, 8000, seed=1)[:, ::2], 2.0, "ps", name="coarse")   # every 2nd frame: dt 2 ps
    c = score(Ensemble(md, 1.0, "ps", name="MD"), {"coarse": cand}, encoder=FirstTorsions(), n_states=10,
              n_boot=50, msm_baseline=False)
    assert cand.latent is None
    assert c.meta["latent_space"] == "the ensembles' own latent trajectories"
    assert c.meta["dt"] == 2.0 and c.meta["strides"] == {"MD": 2, "coarse": 1}
    assert list(c.rows) == ["equal-length MD", "coarse"]
    with pytest.raises(ValueError, match="does not divide"):
        score(Ensemble(md, 1.0, "ps"), {"x": Ensemble(md, 1.5, "ps")}, encoder=FirstTorsions())


def test_js_distance_is_the_hand_formula():
    """scipy's jensenshannon (natural log) gives the JS distance written out: sqrt((KL(p|m) + KL(q|m)) / 2)."""
    rng = np.random.default_rng(0)
    p, q = rng.random((4, 12)), rng.random((4, 12))
    p[0, :3] = 0
    pn, qn = p / p.sum(1, keepdims=True), q / q.sum(1, keepdims=True)
    m = (pn + qn) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = lambda a: np.where(a > 0, a * np.log(a / m), 0.0).sum(1)  # noqa: E731
    assert np.allclose(js_distance(p, q), np.sqrt((kl(pn) + kl(qn)) / 2), atol=1e-12)
