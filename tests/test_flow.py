"""Conditional normalizing-flow decoder: multimodal toy, likelihood, persistence, the estimator contract.

Trains the configuration that ships (class defaults, as notebook 05's cpu profile) on the bimodal toy
of :mod:`toys` (3-atom chain, apex angle with modes of weight 0.7 and 0.3 at every condition).
"""
import numpy as np
import pytest
import torch

from lss.flow import FlowDecoder
from toys import W_LOW, apex_angle, bimodal_chain, bimodal_tv


@pytest.fixture(scope="module")
def data():
    return bimodal_chain(8000, np.random.default_rng(0))


@pytest.fixture(scope="module")
def fitted(data):
    xyz, c = data
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return FlowDecoder(max_epochs=40, random_state=0).fit(xyz, c)
    finally:
        torch.set_num_threads(threads)


def test_two_modes_with_their_weights(fitted):
    """TV <= 0.1 of the apex-angle histogram (0.05 rad bins, 4,000 draws) at three conditions and the
    upper mode's weight within 0.05 of 0.3. Measured with training seeds 0, 1, 2: TV 0.048-0.092,
    weights 0.29-0.32 (4,000 true draws against 4,000 others: TV 0.028 on average, at most 0.038 in 20 tries)."""
    for c0 in (-0.6, 0.0, 0.6):
        tv, w_upper = bimodal_tv(fitted, c0)
        assert tv <= 0.1, (c0, tv)
        assert abs(w_upper - (1 - W_LOW)) < 0.05, (c0, w_upper)


def test_held_out_likelihood_prefers_the_right_condition(fitted, data):
    """The held-out score is a real density: frames at their own condition score better than the
    same frames at a condition that puts both modes elsewhere."""
    xyz, c = bimodal_chain(2000, np.random.default_rng(9))
    right = fitted.score(xyz, c)
    wrong = fitted.score(xyz, -c)
    assert np.isfinite(right) and right < wrong - 0.2
    assert fitted.val_nll_ == pytest.approx(min(fitted.history_["val_nll"]))
    assert 0 <= fitted.best_epoch_ < len(fitted.history_["val_nll"])


def test_bonds_are_md_bonds(fitted, data):
    xyz, c = data
    y = fitted.generate(c[:3000], random_state=1)
    b, b_md = (np.linalg.norm(np.diff(a, axis=1), axis=-1) for a in (y, xyz))
    np.testing.assert_allclose(b.mean(0), b_md.mean(0), atol=5e-4)
    np.testing.assert_allclose(b.std(0), b_md.std(0), rtol=0.1)
    assert np.isfinite(apex_angle(y)).all()


def test_save_load_bitwise_and_seeds(fitted, tmp_path):
    c = np.random.default_rng(2).uniform(-1, 1, (400, 1)).astype(np.float32)
    loaded = FlowDecoder.load(fitted.save(tmp_path / "flow.lss"))
    np.testing.assert_array_equal(fitted.generate(c, random_state=3), loaded.generate(c, random_state=3))
    assert not np.allclose(fitted.generate(c, random_state=3), fitted.generate(c, random_state=4))
    assert loaded.get_params() == fitted.get_params() and loaded.history_ == fitted.history_


def test_global_rng_untouched_and_fit_seeded(data):
    xyz, c = data
    t_state, n_state = torch.get_rng_state(), np.random.get_state()
    kw = dict(transforms=2, hidden=(16,), max_epochs=2, random_state=4)
    a = FlowDecoder(**kw).fit(xyz[:1000], c[:1000])
    b = FlowDecoder(**kw).fit(xyz[:1000], c[:1000])
    np.testing.assert_array_equal(a.generate(c[:20], random_state=0), b.generate(c[:20], random_state=0))
    assert torch.equal(torch.get_rng_state(), t_state)
    assert all(np.array_equal(u, v) for u, v in zip(np.random.get_state(), n_state))


def test_nan_leaves_it_unfitted(data, tmp_path):
    xyz, c = data
    m = FlowDecoder(transforms=2, hidden=(16,), max_epochs=3, lr=1e20, random_state=0)
    with pytest.raises(RuntimeError, match="diverged"):
        m.fit(xyz[:1000], c[:1000], checkpoint=tmp_path / "x.lss")
    assert not (tmp_path / "x.lss").exists()
    with pytest.raises(RuntimeError, match="not fitted"):
        m.generate(c[:3])


def test_bad_input(fitted, data):
    xyz, c = data
    with pytest.raises(ValueError, match="latent"):
        FlowDecoder().fit(xyz[:100], c[:90])
    with pytest.raises(ValueError, match="kind"):
        FlowDecoder(kind="maf").fit(xyz[:100], c[:100])
    with pytest.raises(ValueError, match="val_fraction"):
        FlowDecoder(val_fraction=1.5).fit(xyz[:100], c[:100])
    with pytest.raises(ValueError, match="latent"):
        fitted.generate(np.zeros((4, 2), np.float32))
