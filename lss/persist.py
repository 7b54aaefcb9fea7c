"""The one file format of lss: arrays and JSON in a zip archive, nothing that can run code.

Every model file lss writes (SRV, MDN, decoders, feature scaler, encoder, MSM baseline, simulator)
is an *lss archive*: an uncompressed zip holding

- ``lss.json`` -- UTF-8 JSON: the archive version (``"lss_archive": 1``), the format tag of what it
  holds (e.g. ``"lss.srv/2"``), the package versions that wrote it, a SHA-256 checksum of the
  content, and the object's ``state()`` as a JSON tree in which every array is a reference
  ``{"__lss__": "ndarray" | "tensor" | "scalar", "ref": "a3", ...}``;
- ``a0.npy``, ``a1.npy``, ... -- one array per reference, in NumPy's ``.npy`` format, read with
  ``allow_pickle=False`` (an object array, the one place a ``.npy`` could carry a pickle, is refused).

Reading never unpickles: a file with a pickle payload, the torch files of earlier lss versions
(``torch.save`` zips with a ``data.pkl``), a truncated or foreign file all raise ``ValueError``
naming the file and saying what to do; nothing in them runs. :func:`write_state` /
:func:`read_state` round-trip a nested state bitwise: leaves may be torch tensors (any dtype,
``bfloat16`` included), NumPy arrays and scalars (dtype kept), and JSON values (str, int, float --
NaN and inf included --, bool, None, and lists/tuples/dicts of those; tuples come back as lists,
dict keys must be strings).

Class lookup for composite files (the simulator holds an encoder, a propagator and a decoder) goes
through an explicit registry keyed by format tag: every subclass of :class:`Persistable` that sets
a ``_format`` is registered when its class is defined (:func:`registered`); nothing is imported by
a name read from a file.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: Version of the archive layout itself (not of what it holds).
ARCHIVE_VERSION = 1
_HEADER = "lss.json"
_MARK = "__lss__"

# torch dtypes NumPy cannot hold are stored as raw bytes (uint8) with their torch dtype recorded
_TORCH_ONLY_DTYPES = ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                      "complex32", "bits16")

#: format tag -> class; filled by :class:`Persistable` subclasses when they are defined.
_REGISTRY: dict[str, type] = {}

_OLD_FORMAT_HINT = ("it is in the format of an earlier lss version (a torch.save pickle, which lss no "
                    "longer opens because unpickling can run code); retrain, or re-save it with the lss "
                    "version that wrote it")


def package_versions() -> dict:
    """Versions of lss, torch and numpy (written into every file)."""
    from . import __version__

    return {"lss": __version__, "torch": torch.__version__, "numpy": np.__version__}


# ------------------------------------------------------------------------------------- registry
def register(cls: type) -> type:
    """Register ``cls`` under its ``_format`` tag (done automatically for :class:`Persistable`)."""
    tag = cls.__dict__.get("_format", "")
    if not isinstance(tag, str) or not tag:
        raise ValueError(f"{cls.__qualname__} has no _format tag to register")
    old = _REGISTRY.get(tag)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"format tag {tag!r} is already used by {old.__module__}.{old.__qualname__}")
    _REGISTRY[tag] = cls               # a reloaded module replaces its own class
    return cls


def registered(tag: str) -> type:
    """The class registered for format ``tag``; ``KeyError`` when no imported lss class has it."""
    return _REGISTRY[tag]


def registered_formats() -> dict[str, str]:
    """``{format tag: 'module.Class'}`` of every registered class (for messages and ``lss info``)."""
    return {t: f"{c.__module__}.{c.__qualname__}" for t, c in sorted(_REGISTRY.items())}


# --------------------------------------------------------------------------------- content hash
def content_hash(obj: Any) -> str:
    """SHA-256 (hex) of a nested state: dicts, lists/tuples, arrays, tensors and plain values.

    Independent of how the state is stored; tuples and lists hash alike (a state and its round
    trip through a file have the same hash).
    """
    h = hashlib.sha256()

    def walk(o):
        if isinstance(o, dict):
            h.update(b"{")
            for k in sorted(o, key=str):
                h.update(repr(str(k)).encode())
                walk(o[k])
            h.update(b"}")
        elif isinstance(o, (list, tuple)):
            h.update(b"[")
            for x in o:
                walk(x)
            h.update(b"]")
        elif _is_tensor(o):
            a = o.detach().cpu().contiguous()
            h.update(f"T{tuple(a.shape)}{a.dtype}".encode())
            if a.numel():
                h.update(a.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(o, np.ndarray):
            a = np.ascontiguousarray(o)
            h.update(f"A{a.shape}{a.dtype.str}".encode())
            h.update(a.tobytes())
        elif isinstance(o, np.generic):
            h.update(f"S{o.dtype.str}".encode())
            h.update(np.asarray(o).tobytes())
        else:
            h.update(f"{type(o).__name__}:{o!r};".encode())

    walk(obj)
    return h.hexdigest()


def _is_tensor(o) -> bool:
    return isinstance(o, torch.Tensor)


# ------------------------------------------------------------------------------------ encoding
def _encode(obj, arrays: list, where: str):
    """JSON tree of ``obj``; arrays are appended to ``arrays`` and replaced by references."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int) and not isinstance(obj, np.generic):
        return int(obj)
    if isinstance(obj, float) and not isinstance(obj, np.generic):
        return float(obj)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: dict keys must be strings to be saved, got {k!r}")
            if k == _MARK:
                raise TypeError(f"{where}: the key {_MARK!r} is reserved by the lss file format")
            out[k] = _encode(v, arrays, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    ref = f"a{len(arrays)}"
    if _is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        dt = str(t.dtype).removeprefix("torch.")
        if dt in _TORCH_ONLY_DTYPES:
            a = t.reshape(-1).view(torch.uint8).numpy().copy()
            arrays.append(a)
            return {_MARK: "tensor", "ref": ref, "dtype": dt, "shape": list(t.shape), "raw": True}
        arrays.append(t.numpy().copy())
        return {_MARK: "tensor", "ref": ref, "dtype": dt}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"{where}: object arrays cannot be saved (only numeric, bool and fixed-width "
                            f"string arrays)")
        arrays.append(np.ascontiguousarray(obj))
        return {_MARK: "ndarray", "ref": ref}
    if isinstance(obj, np.generic):
        arrays.append(np.asarray(obj))
        return {_MARK: "scalar", "ref": ref}
    raise TypeError(f"{where}: a {type(obj).__module__}.{type(obj).__qualname__} cannot be saved; a state "
                    f"holds tensors, arrays and JSON values only")


def _decode(node, arrays: dict, path: Path):
    if isinstance(node, list):
        return [_decode(v, arrays, path) for v in node]
    if not isinstance(node, dict):
        return node
    kind = node.get(_MARK)
    if kind is None:
        return {k: _decode(v, arrays, path) for k, v in node.items()}
    ref = node.get("ref")
    if ref not in arrays:
        raise ValueError(f"{path}: the file refers to an array {ref!r} it does not hold; it is corrupt")
    a = arrays[ref]
    if kind == "ndarray":
        return a
    if kind == "scalar":
        return a[()]
    if kind == "tensor":
        dt = getattr(torch, str(node.get("dtype")), None)
        if not isinstance(dt, torch.dtype):
            raise ValueError(f"{path}: unknown tensor dtype {node.get('dtype')!r}; the file was written by "
                             f"a newer torch or is corrupt")
        if node.get("raw"):
            return torch.from_numpy(a).view(dt).reshape(node["shape"])
        t = torch.from_numpy(a)
        if t.dtype != dt:
            raise ValueError(f"{path}: array {ref} has dtype {t.dtype}, not {dt}; the file is corrupt")
        return t
    raise ValueError(f"{path}: unknown entry kind {kind!r}; the file was written by a newer lss")


# ---------------------------------------------------------------------------------- read, write
def write_state(path: str | os.PathLike, fmt: str, state: dict, extra: dict | None = None) -> Path:
    """Write ``state`` under format tag ``fmt`` to an lss archive at ``path`` (atomically).

    Parameters
    ----------
    path : path
        Target file; parent folders are created; an existing file is replaced only once the new
        one is complete.
    fmt : str
        Format tag of what is stored, e.g. ``"lss.srv/2"``.
    state : dict
        Nested state whose leaves are tensors, arrays, NumPy scalars or JSON values.
    extra : dict, optional
        JSON values stored beside the state in the header (e.g. more versions).

    Returns
    -------
    Path
    """
    path = Path(path)
    arrays: list = []
    tree = _encode(state, arrays, "state")
    header = {"lss_archive": ARCHIVE_VERSION, "format": fmt, "versions": package_versions(),
              "checksum": content_hash(state), "n_arrays": len(arrays), "state": tree, **(extra or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(_HEADER, json.dumps(header, allow_nan=True))
        for i, a in enumerate(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a, allow_pickle=False)
            z.writestr(f"a{i}.npy", buf.getvalue())
    os.replace(tmp, path)
    return path


def _refuse_non_archive(path: Path, what: str, head: bytes):
    if head[:1] == b"\x80" or head[:2] in (b"(d", b"(l", b"}q", b"]q", b"}r", b"]r"):
        raise ValueError(f"{path}: this {what} file is a Python pickle, which lss never opens (unpickling "
                         f"can run code); {_OLD_FORMAT_HINT}")
    if head[:6] == b"\x93NUMPY":
        raise ValueError(f"{path}: a bare NumPy .npy array, not an lss {what} file")
    raise ValueError(f"{path}: not an lss {what} file (it is not an lss archive; it may be truncated, "
                     f"corrupt or another program's file)")


def read_header(path: str | os.PathLike, what: str = "lss") -> tuple[dict, zipfile.ZipFile]:
    """Open an lss archive and parse its JSON header, refusing anything else (internal helper)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not an lss {what} file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] != b"PK\x03\x04":
        _refuse_non_archive(path, what, head)
    try:
        z = zipfile.ZipFile(path)
        names = z.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a readable lss {what} file; it is truncated or corrupt "
                         f"({type(e).__name__}: {e}); copy it again, or re-save it") from None
    try:
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            raise ValueError(f"{path}: this {what} file is a torch.save pickle archive; {_OLD_FORMAT_HINT}")
        if _HEADER not in names:
            raise ValueError(f"{path}: a zip archive, but not an lss {what} file (no {_HEADER}); it was "
                             f"written by another program")
        try:
            header = json.loads(z.read(_HEADER).decode("utf-8"))
        except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, OSError, EOFError) as e:
            raise ValueError(f"{path}: the header of this {what} file is unreadable ({type(e).__name__}: {e}); "
                             f"the file is truncated or corrupt") from None
        if not isinstance(header, dict) or not isinstance(header.get("format"), str):
            raise ValueError(f"{path}: the header of this {what} file has no format tag; it is corrupt")
        ver = header.get("lss_archive")
        if ver != ARCHIVE_VERSION:
            raise ValueError(f"{path}: lss archive version {ver!r}, but this lss reads version "
                             f"{ARCHIVE_VERSION}; it was written by another lss version "
                             f"({header.get('versions')}); update lss, or re-save it with the version that wrote it")
    except BaseException:
        z.close()
        raise
    return header, z


def read_state(path: str | os.PathLike, expect: str | tuple[str, ...] | None = None,
               what: str = "lss") -> tuple[str, dict, dict]:
    """Read an lss archive written by :func:`write_state`; never unpickles.

    Parameters
    ----------
    path : path
    expect : str or tuple of str, optional
        Accepted format tag(s); another tag raises ``ValueError`` saying which it is.
    what : str
        What the file should be (for messages), e.g. ``"SRV"``.

    Returns
    -------
    fmt : str
        The format tag.
    state : dict
        The state, bitwise as written (tuples as lists).
    header : dict
        The header without the state (versions, checksum, ...).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A pickle (the torch files of earlier lss versions included), a truncated, corrupt or foreign
        file, an unexpected format tag, or content that does not match its checksum.
    """
    path = Path(path)
    header, z = read_header(path, what)
    with z:
        fmt = header["format"]
        if expect is not None:
            ok = (expect,) if isinstance(expect, str) else tuple(expect)
            if fmt not in ok:
                same_kind = any(fmt.split("/")[0] == e.split("/")[0] for e in ok)
                hint = (f"it was written by another lss version ({header.get('versions')}); retrain, or "
                        f"re-save it with the version that wrote it") if same_kind else \
                    (f"it holds a {registered_formats().get(fmt, 'different kind of object')}, "
                     f"not a {what}")
                raise ValueError(f"{path}: format {fmt!r} is not {' or '.join(map(repr, ok))}; {hint}")
        arrays = {}
        try:
            for i in range(int(header.get("n_arrays", 0))):
                with z.open(f"a{i}.npy") as f:
                    arrays[f"a{i}"] = np.lib.format.read_array(f, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{path}: array a{i} of this {what} file cannot be read without unpickling "
                             f"or is damaged ({e}); lss refuses it -- nothing in it was run") from None
        except (KeyError, zipfile.BadZipFile, OSError, EOFError) as e:
            raise ValueError(f"{path}: array a{i} of this {what} file is missing or damaged "
                             f"({type(e).__name__}: {e}); the file is truncated or corrupt") from None
        state = _decode(header.pop("state", None), arrays, path)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: this {what} file holds no state; it is corrupt")
    if content_hash(state) != header.get("checksum"):
        raise ValueError(f"{path}: the content of this {what} file does not match its checksum: it was "
                         f"damaged or altered after it was written; copy it again, or re-save it")
    return fmt, state, header


def load_any(path: str | os.PathLike, device: str = "cpu"):
    """Load whatever lss object the file at ``path`` holds (looked up by its format tag)."""
    fmt = read_header(path)[0]["format"]
    try:
        cls = registered(fmt)
    except KeyError:
        raise ValueError(f"{path}: format {fmt!r} is not one this lss reads (known: "
                         f"{sorted(_REGISTRY)}): import the lss module that defines it first (e.g. lss.flow, lss.cwgan), or it "
                         f"was written by another lss version") from None
    return cls.load(path, device=device)


def state_of(obj, what: str) -> dict | None:
    """``{"format": tag, "state": obj.state()}`` of a registered lss object (None for None).

    Used by composite objects (the simulator, the encoder) to nest their parts in one file.
    """
    if obj is None:
        return None
    tag = getattr(type(obj), "_format", "")
    if not tag or _REGISTRY.get(tag) is not type(obj):
        raise ValueError(f"{what} of type {type(obj).__name__} cannot be saved: it must be a registered lss "
                         f"class (a Persistable with a _format tag)")
    return {"format": tag, "state": obj.state()}


def object_from(d: dict | None, what: str, path="<state>"):
    """Inverse of :func:`state_of`: the class comes from the registry, never from a name in the file."""
    if d is None:
        return None
    if not isinstance(d, dict) or not isinstance(d.get("format"), str):
        raise ValueError(f"{path}: the {what} entry has no format tag; the file is corrupt")
    try:
        cls = registered(d["format"])
    except KeyError:
        raise ValueError(f"{path}: the {what} is in format {d['format']!r}, which this lss does not read "
                         f"(known: {sorted(_REGISTRY)}); it was written by another lss version; retrain, "
                         f"or re-save it with the version that wrote it") from None
    return cls.from_state(d["state"])


# ------------------------------------------------------------------------------------- the mixin
class Persistable:
    """Mixin: ``save(path)`` / ``load(path)`` on top of ``state()`` / ``from_state(state)``.

    A subclass sets ``_format`` (e.g. ``"lss.mdn/2"``; bump the number on a breaking change) and is
    then registered under it, so that composite files can find it without importing by name.
    """

    #: Format tag written into every file; bump the number on a breaking change.
    _format: str = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_format"):
            register(cls)

    def state(self) -> dict:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict):  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted object to ``path`` (an lss archive; parent folders are created)."""
        return write_state(path, self._format, self.state())

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu"):
        """Read a file written by :meth:`save`; never runs code from the file.

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            Another format, an earlier lss version's file, a pickle, a truncated or corrupt file.
        """
        _, state, header = read_state(path, expect=cls._format, what=cls.__name__)
        try:
            obj = cls.from_state(state)
        except ValueError:
            raise
        except Exception as e:
            raise ValueError(f"{path}: cannot rebuild a {cls.__name__} from the file ({type(e).__name__}: {e}); "
                             f"it is corrupt or from an incompatible lss version ({header.get('versions')})") from None
        obj.versions_ = header.get("versions")
        if device is not None and hasattr(obj, "to"):
            obj.to(device)
        return obj

