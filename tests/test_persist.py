"""The lss file format: bitwise round trips, and files that are refused without running anything."""
import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch

from lss import persist
from lss.base import Estimator


class _Marker:
    """Unpickling this creates the marker file: the payload a malicious model file would carry."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _state():
    return {
        "f64": np.linspace(-1, 1, 7), "f32": np.arange(6, dtype=np.float32).reshape(2, 3) / 3,
        "i64": np.arange(5), "u8": np.array([0, 255], dtype=np.uint8), "b": np.array([True, False]),
        "s": np.array(["ab", "cde"]), "scalar32": np.float32(1 / 3), "scalar_i": np.int16(-7),
        "empty": np.zeros((0, 3)),
        "t32": torch.randn(3, 4, generator=torch.Generator().manual_seed(0)),
        "t64": torch.arange(4, dtype=torch.float64) / 7, "tbf16": torch.tensor([1.5, -2.25], dtype=torch.bfloat16),
        "tlong": torch.tensor([[1, 2]]), "tbool": torch.tensor([True]),
        "plain": {"x": 1, "y": 2.5, "z": None, "w": "text", "v": True, "nan": float("nan"),
                  "inf": float("-inf"), "big": 2**70, "tuple": (1, 2, (3, 4)), "list": [0.1, [0.2]]},
        "nested": [{"a": np.ones(2)}, (torch.zeros(1),)],
    }


def _same(a, b):
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a.view(-1).view(torch.uint8), b.view(-1).view(torch.uint8))
    elif isinstance(a, (np.ndarray, np.generic)):
        assert type(a) is type(b) and a.dtype == b.dtype and np.shape(a) == np.shape(b)
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b)
    else:
        assert type(a) is type(b) and a == b


def test_round_trip_is_bitwise(tmp_path):
    state = _state()
    persist.write_state(tmp_path / "x.lss", "test.kind/1", state)
    fmt, back, header = persist.read_state(tmp_path / "x.lss", expect="test.kind/1")
    assert fmt == "test.kind/1" and header["versions"]["lss"]
    _same(state, back)
    assert persist.content_hash(back) == persist.content_hash(state)


def test_unsaveable_leaves_are_refused(tmp_path):
    with pytest.raises(TypeError, match="state.bad"):
        persist.write_state(tmp_path / "x.lss", "t/1", {"bad": object()})
    with pytest.raises(TypeError, match="object arrays"):
        persist.write_state(tmp_path / "x.lss", "t/1", {"a": np.array([None, 1], dtype=object)})
    with pytest.raises(TypeError, match="keys must be strings"):
        persist.write_state(tmp_path / "x.lss", "t/1", {1: 2})


def test_pickles_and_old_torch_files_are_refused_without_running(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"format": "lss.srv/1", "state": _Marker(marker)}, tmp_path / "old.pt")
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps(_Marker(marker)))
    for name in ("old.pt", "raw.pkl"):
        with pytest.raises(ValueError, match=r"(?s)" + name + ".*retrain, or re-save it with the lss version"):
            persist.read_state(tmp_path / name)
    assert not marker.exists()
    # an archive whose array slot carries a pickled object array
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([_Marker(marker)], dtype=object), allow_pickle=True)
    persist.write_state(tmp_path / "ok.lss", "t/1", {"a": np.zeros(2)})
    with zipfile.ZipFile(tmp_path / "ok.lss") as z:
        header = z.read("lss.json")
    with zipfile.ZipFile(tmp_path / "evil.lss", "w") as z:
        z.writestr("lss.json", header)
        z.writestr("a0.npy", buf.getvalue())
    with pytest.raises(ValueError, match="evil.lss.*without unpickling"):
        persist.read_state(tmp_path / "evil.lss")
    assert not marker.exists()


def test_truncated_foreign_missing_and_altered_files(tmp_path):
    path = persist.write_state(tmp_path / "x.lss", "t/1", _state())
    data = path.read_bytes()
    (tmp_path / "cut.lss").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.lss.*truncated or corrupt"):
        persist.read_state(tmp_path / "cut.lss")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt.*not an lss"):
        persist.read_state(tmp_path / "notes.txt")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme", "x")
    with pytest.raises(ValueError, match="other.zip.*another program"):
        persist.read_state(tmp_path / "other.zip")
    with pytest.raises(FileNotFoundError, match="absent.lss"):
        persist.read_state(tmp_path / "absent.lss")
    with pytest.raises(ValueError, match="x.lss.*'t/1' is not 'u/1'"):
        persist.read_state(path, expect="u/1")
    # alter one stored number, keeping a valid archive: the checksum catches it
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    header = json.loads(entries["lss.json"])
    ref = header["state"]["f64"]["ref"]
    a = np.lib.format.read_array(io.BytesIO(entries[f"{ref}.npy"]))
    a[0] += 1
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a)
    entries[f"{ref}.npy"] = buf.getvalue()
    with zipfile.ZipFile(tmp_path / "altered.lss", "w") as z:
        for n, b in entries.items():
            z.writestr(n, b)
    with pytest.raises(ValueError, match="altered.lss.*does not match its checksum"):
        persist.read_state(tmp_path / "altered.lss")


class _Toy(Estimator):
    _format = "test.toy/1"

    def __init__(self, width: int = 3, hidden=(4, 5), device: str = "cpu", random_state=None):
        self.width = width
        self.hidden = tuple(hidden)
        self.device = device
        self.random_state = random_state

    def fit(self):
        self.net_ = torch.nn.Linear(self.width, 1)
        return self

    def state(self):
        self._check_fitted()
        return {"params": self.get_params(), "net": self.net_.state_dict()}

    @classmethod
    def from_state(cls, state):
        self = cls._from_params(state["params"])
        self.net_ = torch.nn.Linear(self.width, 1)
        self.net_.load_state_dict(state["net"])
        return self


def test_estimator_contract(tmp_path):
    toy = _Toy(width=2)
    assert toy.get_params() == {"width": 2, "hidden": (4, 5), "device": "cpu", "random_state": None}
    assert repr(toy) == "_Toy(width=2)"
    with pytest.raises(RuntimeError, match="_Toy is not fitted"):
        toy._check_fitted()
    with pytest.raises(ValueError, match="'widht' is not a parameter of _Toy"):
        toy.set_params(widht=3)
    toy.set_params(width=3).fit()
    assert persist.registered("test.toy/1") is _Toy
    back = _Toy.load(toy.save(tmp_path / "toy.lss"))
    assert back.get_params() == toy.get_params()          # the tuple came back as a list, and as a tuple
    assert torch.equal(back.net_.weight, toy.net_.weight)
    assert persist.load_any(tmp_path / "toy.lss").width == 3
    with pytest.raises(ValueError, match="no parameter"):
        _Toy._from_params({"width": 1, "depth": 2})
