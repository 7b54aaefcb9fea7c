"""Toy molecules with known conditional distributions, shared by the decoder tests."""
import numpy as np

#: bimodal toy: weight of the lower apex-angle mode, the two mode centres (rad) and their spread
W_LOW, MODES, SIGMA_MODE = 0.7, (1.35, 2.15), 0.07


def bimodal_chain(n: int, rng: np.random.Generator):
    """3-atom chain whose apex angle, given c ~ U(-1, 1), is 0.7 N(1.35 + 0.15 c, 0.07^2) + 0.3 N(2.15 + 0.15 c, 0.07^2).

    Returns coords (n, 3, 3) float32 nm (bonds 0.38 +/- 0.005 nm, in the xy plane) and c (n, 1) float32.
    """
    c = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    theta = bimodal_angles(c[:, 0], rng)
    b = 0.38 + 0.005 * rng.standard_normal((n, 2))
    x = np.zeros((n, 3, 3))
    x[:, 1, 0] = b[:, 0]
    x[:, 2, 0] = b[:, 0] - b[:, 1] * np.cos(theta)
    x[:, 2, 1] = b[:, 1] * np.sin(theta)
    return x.astype(np.float32), c


def bimodal_angles(c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draws of the apex angle (rad) at conditions ``c`` (n,)."""
    upper = rng.random(len(c)) > W_LOW
    return np.where(upper, MODES[1], MODES[0]) + 0.15 * np.asarray(c) + SIGMA_MODE * rng.standard_normal(len(c))


def apex_angle(xyz: np.ndarray) -> np.ndarray:
    """Angle at atom 1 of each frame (n, 3, 3) nm -> (n,) rad."""
    u, v = xyz[:, 0] - xyz[:, 1], xyz[:, 2] - xyz[:, 1]
    cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return np.arccos(np.clip(cos, -1, 1))


def bimodal_tv(decoder, c0: float, n: int = 4000, seed: int = 0) -> tuple[float, float]:
    """(TV between generated and true apex-angle histograms at condition ``c0``, generated weight of the upper mode)."""
    rng = np.random.default_rng(seed)
    gen = apex_angle(decoder.generate(np.full((n, 1), c0, np.float32), random_state=seed))
    true = bimodal_angles(np.full(n, c0), rng)
    bins = np.linspace(0.9, 2.7, 37)  # 0.05 rad
    hg, ht = np.histogram(gen, bins)[0] / n, np.histogram(true, bins)[0] / n
    return 0.5 * float(np.abs(hg - ht).sum()), float((gen > sum(MODES) / 2 + 0.15 * c0).mean())
