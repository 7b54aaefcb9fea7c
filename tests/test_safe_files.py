"""Every file lss reads refuses a payload that would run code, and every saved kind round-trips bitwise.

For each saved kind (SRV, MDN, cWGAN, feature scaler, encoder, simulator, latent file, dataset) a
crafted file carries a pickle whose unpickling would create a marker file: once as the torch.save
files of earlier lss versions, once in the slot of the current format that could hold an object
(an object array in the archive, the ``.npz`` or the ``.npy``). Each is refused with a ValueError
naming the file, and the marker never appears. Truncated and foreign files are refused the same way.
"""
import io
import json
import zipfile

import numpy as np
import pytest
import torch

from lss import persist
from lss.cwgan import CWGAN
from lss.data import TrpcageDataset
from lss.features import CAFeaturizer, Encoder, FeatureScaler
from lss.gomodel import native_structure
from lss.latent import LatentTrajectories, load_latent
from lss.mdn import MDNPropagator
from lss.simulator import LatentSpaceSimulator
from lss.srv import SRV


class _Marker:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _object_npy(marker) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([_Marker(marker)], dtype=object), allow_pickle=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def parts():
    torch.set_num_threads(1)
    nat = native_structure()
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(0, 0.02, (300, 1, 1)), 0)
    xyz = (nat.xyz + rng.normal(0, 0.05, (300, 20, 3)) + walk * np.linspace(-1, 1, 20)[None, :, None]).astype(np.float32)
    feat = CAFeaturizer(nat.topology)
    raw = feat.transform(xyz)
    scaler = FeatureScaler().fit(raw)
    srv = SRV(n_components=2, lag=1, hidden=(8,), max_epochs=2, batch_size=128, random_state=0).fit(scaler.transform(raw))
    enc = Encoder(feat, scaler, srv)
    lat = enc.transform(xyz)
    mdn = MDNPropagator(n_kernels=2, lag=1, hidden=(8,), max_epochs=2, batch_size=128, random_state=0).fit(lat)
    dec = CWGAN(noise_dim=3, hidden=(8,), n_epochs=1, batch_size=128, random_state=0).fit(xyz, lat)
    sim = LatentSpaceSimulator(enc, mdn, dec, nat.topology, frame_time=0.003, time_unit="ns", start_latent=lat[0])
    return dict(srv=srv, mdn=mdn, cwgan=dec, scaler=scaler, encoder=enc, simulator=sim, xyz=xyz, raw=raw, lat=lat,
                top=nat.topology)


KINDS = {"srv": SRV, "mdn": MDNPropagator, "cwgan": CWGAN, "scaler": FeatureScaler, "encoder": Encoder,
         "simulator": LatentSpaceSimulator}


def _outputs(kind, obj, p):
    """What a loaded model computes, seeded: must be bitwise the same after a round trip."""
    if kind == "srv":
        return obj.transform(p["scaler"].transform(p["raw"][:50]))
    if kind == "mdn":
        return obj.sample(p["lat"][:3], 10, random_state=1)
    if kind == "cwgan":
        return obj.generate(p["lat"][:20], random_state=2)
    if kind == "scaler":
        return obj.transform(p["raw"][:20])
    if kind == "encoder":
        return obj.transform(p["xyz"][:20])
    return obj.generate(2, 12, random_state=3).xyz


def _state_equal(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_state_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_state_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, (np.ndarray, np.generic)):
        return np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, float) and np.isnan(a):
        return np.isnan(b)
    return a == b


@pytest.mark.parametrize("kind", list(KINDS))
def test_round_trip_is_bitwise(parts, kind, tmp_path):
    obj, cls = parts[kind], KINDS[kind]
    back = cls.load(obj.save(tmp_path / f"{kind}.lss"))
    assert type(back) is cls
    assert _state_equal(obj.state(), back.state())
    np.testing.assert_array_equal(_outputs(kind, obj, parts), _outputs(kind, back, parts))


@pytest.mark.parametrize("kind", list(KINDS))
def test_crafted_payloads_are_refused_and_never_run(parts, kind, tmp_path):
    cls, marker = KINDS[kind], tmp_path / "marker"
    # 1. the torch.save pickle of earlier lss versions
    torch.save({"format": cls._format, "versions": {}, "state": _Marker(marker)}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"(?s)old\.pt.*retrain, or re-save it with the lss version that wrote it"):
        cls.load(tmp_path / "old.pt")
    # 2. a current archive whose first array slot holds a pickled object array
    good = parts[kind].save(tmp_path / "good.lss")
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    entries["a0.npy"] = _object_npy(marker)
    with zipfile.ZipFile(tmp_path / "evil.lss", "w") as z:
        for n, b in entries.items():
            z.writestr(n, b)
    with pytest.raises(ValueError, match=r"evil\.lss.*without unpickling"):
        cls.load(tmp_path / "evil.lss")
    assert not marker.exists()
    # truncated and foreign files name themselves
    data = good.read_bytes()
    (tmp_path / "cut.lss").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError, match=r"cut\.lss.*truncated or corrupt"):
        cls.load(tmp_path / "cut.lss")
    (tmp_path / "foreign.bin").write_bytes(b"\x00\x01 not a model")
    with pytest.raises(ValueError, match=r"foreign\.bin.*not an lss"):
        cls.load(tmp_path / "foreign.bin")
    with pytest.raises(FileNotFoundError, match="absent.lss"):
        cls.load(tmp_path / "absent.lss")


def test_a_file_of_one_kind_is_not_loaded_as_another(parts, tmp_path):
    path = parts["mdn"].save(tmp_path / "mdn.lss")
    for cls in (SRV, CWGAN, FeatureScaler, Encoder):
        with pytest.raises(ValueError, match=r"mdn\.lss.*'lss\.mdn/2'"):
            cls.load(path)
    assert type(persist.load_any(path)) is MDNPropagator


def test_latent_file_refuses_pickles(parts, tmp_path):
    marker = tmp_path / "marker"
    good = LatentTrajectories([parts["lat"]], 0.003, "ns", 1, (0, 1)).save(tmp_path / "ok" / "latent.npz")
    back = load_latent(good.parent)
    np.testing.assert_array_equal(back.trajs[0], parts["lat"])
    assert (back.lag, back.modes, back.n_components) == (1, (0, 1), 2)
    (tmp_path / "evil").mkdir()
    with zipfile.ZipFile(good) as z, zipfile.ZipFile(tmp_path / "evil" / "latent.npz", "w") as out:
        for n in z.namelist():
            out.writestr(n, _object_npy(marker) if n == "traj_000.npy" else z.read(n))
    with pytest.raises(ValueError, match=r"evil/latent\.npz.*without unpickling"):
        load_latent(tmp_path / "evil")
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "latent.npz").write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cut/latent\.npz"):
        load_latent(tmp_path / "cut")
    assert not marker.exists()


def test_dataset_refuses_pickles(parts, tmp_path):
    marker = tmp_path / "marker"
    ds = TrpcageDataset(xyz=[parts["xyz"]], features=[parts["scaler"].transform(parts["raw"])],
                        feature_names=CAFeaturizer(parts["top"]).feature_names, topology=parts["top"],
                        frame_time=0.003, time_unit="ns", q=[np.zeros(len(parts["xyz"]), np.float32)],
                        meta={"source": "test"}, scaler=parts["scaler"])
    d = ds.save(tmp_path / "ds")
    back = TrpcageDataset.load(d)
    np.testing.assert_array_equal(back.xyz[0], ds.xyz[0])
    np.testing.assert_array_equal(back.scaler.mean_, ds.scaler.mean_)
    (d / "xyz_000.npy").write_bytes(_object_npy(marker))
    with pytest.raises(ValueError, match=r"xyz_000\.npy.*without unpickling"):
        TrpcageDataset.load(d)
    ds.save(d)
    torch.save({"format": FeatureScaler._format, "state": _Marker(marker)}, d / "scaler.lss")
    with pytest.raises(ValueError, match=r"scaler\.lss.*retrain"):
        TrpcageDataset.load(d)
    assert not marker.exists()
    doc = json.loads((d / "dataset.json").read_text())
    (d / "dataset.json").write_text(json.dumps({**doc, "format": "lss.trpcage_dataset/1"}))
    with pytest.raises(ValueError, match="another lss version"):
        TrpcageDataset.load(d)


def test_simulator_leaves_global_random_state_alone(parts):
    sim = parts["simulator"]
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    sim.generate(2, 30, random_state=4)
    sim.generate(2, 30, random_state=4, pipeline=False)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]


def test_estimator_contract_is_shared(parts):
    for kind in ("srv", "mdn", "scaler"):
        est = parts[kind]
        params = est.get_params()
        assert type(est)(**params).get_params() == params
        with pytest.raises(ValueError, match="not a parameter"):
            type(est)().set_params(no_such_parameter=1)
        with pytest.raises(RuntimeError, match=f"{type(est).__name__} is not fitted"):
            type(est)()._check_fitted()
        assert est.fit_time_s_ >= 0
    assert parts["srv"].n_components_ == parts["mdn"].n_components_ == parts["simulator"].n_components_ == 2
    assert parts["encoder"].n_components_ == 2 and parts["encoder"].n_features_in_ == parts["raw"].shape[1]
