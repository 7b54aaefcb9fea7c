"""The class (course) profile and the helpers its notebooks call: a valid parameter file that never
publishes, folding events that commit (no decoder flicker), F(Q) basins of a known two-state profile."""
import numpy as np
import pytest

from lss import gomodel, paths, reproduce


def test_class_profile_sets_only_declared_parameters_and_is_smaller_than_cpu():
    params = reproduce.load_params("class")
    assert params["common"]["profile"] == "class"
    reproduce.validate(params, reproduce.available_steps())
    cpu = reproduce.load_params("cpu")
    for step, key in (("01_four_well", "n_steps"), ("02_trpcage_data", "n_steps"), ("06_generate", "n_traj"),
                      ("07_analysis", "reference_steps")):
        assert params[step][key] < cpu[step][key], (step, key)
    # the science asks for >= 30 transitions: the cpu data give ~145 per 6e6 steps and trajectory
    n_expected = params["02_trpcage_data"]["n_traj"] * params["02_trpcage_data"]["n_steps"] * 145 / 6e6
    assert n_expected >= 45


def test_class_profile_never_writes_figures(monkeypatch):
    monkeypatch.setenv(paths.PUBLISH_ENV, "class")
    assert not paths.publishing("class")
    assert paths.figures_dir("class") == paths.root() / "runs" / "class" / "figures"


def test_folding_events_commit_and_flicker_does_not_count():
    u, f = 0.2, 0.95
    q = np.array([[u] * 10 + [0.9] + [u] * 10                # one frame above the folded cutoff: flicker
                  + [0.5, 0.7] + [f] * 3 + [u] * 8             # reaches the core but leaves after 3 frames
                  + [0.6, 0.75, 0.8, 0.9] + [f] * 10])         # a committed event: frames 33 -> 37
    ev = gomodel.folding_events(q, min_dwell=5)
    assert ev.tolist() == [[0, 33, 37, 11]]
    pick = gomodel.pick_folding_event(q, min_dwell=5)
    assert (pick["start"], pick["end"], pick["path_frames"], pick["n_events"]) == (33, 37, 4, 1)
    # without a committed event: the most native frame, said by n_events = 0
    none = gomodel.pick_folding_event(np.array([[u] * 5 + [0.9] + [u] * 5]), min_dwell=5)
    assert none["n_events"] == 0 and none["end"] == 5


def test_pick_prefers_the_longest_committed_path():
    u, f = 0.2, 0.95
    one = [u] * 6 + [f] * 6                                    # path of 1 frame
    three = [u] * 6 + [0.6, 0.7, f] + [f] * 6                  # path of 3 frames
    q = [np.array(one + [u] * 6), np.array(three)]
    pick = gomodel.pick_folding_event(q, min_dwell=5)
    assert pick["traj"] == 1 and pick["path_frames"] == 3 and pick["median_path_frames"] == 2.0


def test_free_energy_basins_of_a_two_state_sample():
    rng = np.random.default_rng(0)
    # 3:1 unfolded:folded -> folded minimum ln 3 = 1.1 kT above the unfolded one; a barrier in between
    q = np.r_[rng.normal(0.3, 0.06, 30_000), rng.normal(0.9, 0.03, 10_000), rng.uniform(0.5, 0.8, 300)]
    b = gomodel.free_energy_basins(np.clip(q, 0, 0.999), bins=32)
    assert b["q_unfolded"] == pytest.approx(0.3, abs=0.04) and b["q_folded"] == pytest.approx(0.9, abs=0.04)
    assert 0.5 < b["q_barrier"] < 0.8 and b["barrier_kT"] > 2
    assert np.nanmin(b["F"]) == 0
    one = gomodel.free_energy_basins(rng.normal(0.3, 0.05, 5000))
    assert one["barrier_kT"] is None, "one basin: no barrier"
