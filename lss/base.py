"""The estimator contract shared by every lss model (scikit-learn / deeptime habits).

- The constructor only stores its arguments, under their own names (:meth:`Estimator._store_params`,
  with a few normalised, e.g. ``hidden`` to a tuple); :meth:`Estimator.get_params`
  reads them back from the ``__init__`` signature (no hand-kept list), :meth:`Estimator.set_params`
  changes them (an unknown name is a ``ValueError``).
- ``fit`` does the work and returns ``self``; fitted attributes end in ``_`` and are assigned only
  once training has succeeded, so a diverged or interrupted fit leaves the estimator unfitted
  (:meth:`Estimator._check_fitted` still raises).
- The wall time of ``fit`` is ``fit_time_s_`` (seconds) on every estimator.
- ``random_state`` seeds local generators; the global random state of torch and NumPy is never
  touched (:func:`lss.utils.local_torch_seed`).
- :meth:`Estimator.to` moves every fitted network to a device; ``save`` / ``load`` write and read
  the safe lss archive of :mod:`lss.persist` (no pickle).

A subclass sets ``_format`` (e.g. ``"lss.srv/2"``) to be saveable and registered, and may name in
``_fitted_attr`` the attribute whose presence means "fitted" (default: any public attribute ending in
``_``). Its saved state is declared once, not written out: ``_state`` maps each key of the file to a
fitted attribute (or, for a tuple of names, to a nested dict of those attributes), ``_nets`` maps
keys to the torch modules whose weights are saved; :meth:`Estimator.state` and
:meth:`Estimator.from_state` derive the file from them (``{"params": ..., key: value, ...}``), the
subclass supplies only ``_new_net(key)`` (an untrained module of the fitted shape) and, where the
file's JSON types need it, ``_restored()`` (e.g. lists back to tuples). Composite objects (encoder,
simulator) write their own ``state()`` / ``from_state``.
"""
from __future__ import annotations

import inspect

import torch

from .persist import Persistable
from .utils import get_device, local_torch_seed


class Estimator(Persistable):
    """Base of the lss estimators: parameters from the signature, fitted state, device, files."""

    #: Attribute that exists only once fitted (default: any public attribute ending in ``_``).
    _fitted_attr: str | None = None
    #: Saved fitted state: ``{key in the file: attribute}``, or ``{key: (attribute, ...)}`` for a nested dict.
    _state: dict = {}
    #: Saved torch modules: ``{key in the file: attribute}`` (their ``state_dict``, on the CPU).
    _nets: dict = {}

    # ------------------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        """Names of the constructor's parameters (``self``, ``*args``, ``**kwargs`` excluded)."""
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def _store_params(self, args: dict) -> None:
        """Store the constructor's arguments under their own names: ``self._store_params(locals())``
        first thing in ``__init__`` (the signature is the one list of parameters)."""
        for k in self._param_names():
            setattr(self, k, args[k])

    def get_params(self) -> dict:
        """The constructor parameters, ``{name: value}``, as stored by ``__init__``."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params) -> "Estimator":
        """Set constructor parameters by name; an unknown name raises ``ValueError``.

        Changing a parameter does not refit: call ``fit`` again for it to take effect.
        """
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"{k!r} is not a parameter of {type(self).__name__}; valid: {valid}")
            setattr(self, k, v)
        return self

    @classmethod
    def _from_params(cls, params: dict):
        """A new instance from stored parameters (as they come back from JSON: tuples as lists).

        Parameters the constructor does not know are refused (``ValueError``), missing ones take
        their defaults.
        """
        unknown = set(params) - set(cls._param_names())
        if unknown:
            raise ValueError(f"{cls.__name__} has no parameter(s) {sorted(unknown)}; the file was written "
                             f"by another lss version")
        return cls(**params)

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = []
        for k, v in self.get_params().items():
            default = sig.parameters[k].default
            try:
                same = default is not inspect.Parameter.empty and bool(v == default or
                                                                       (isinstance(default, tuple) and tuple(v) == default))
            except Exception:
                same = False
            if not same:
                parts.append(f"{k}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    # ----------------------------------------------------------------------------- fitted state
    def _is_fitted(self) -> bool:
        if self._fitted_attr is not None:
            return hasattr(self, self._fitted_attr)
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def _check_fitted(self) -> None:
        """Raise ``RuntimeError`` naming the class when the estimator is not fitted."""
        if not self._is_fitted():
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call fit() or load()")

    def _networks(self) -> list[torch.nn.Module]:
        """Fitted torch modules held by the estimator (attributes ending in ``_``)."""
        return [v for k, v in vars(self).items() if k.endswith("_") and isinstance(v, torch.nn.Module)]

    def to(self, device) -> "Estimator":
        """Move the fitted networks to ``device`` (``'cpu'``, ``'cuda'``, ``'auto'``) and compute there
        by default; returns ``self``."""
        dev = get_device(str(device))
        if "device" in self._param_names():
            self.device = str(device)
        for net in self._networks():
            net.to(dev)
        return self

    # ----------------------------------------------------------------------------- persistence
    def state(self) -> dict:
        """Everything needed to rebuild the fitted estimator: parameters, the fitted attributes of
        ``_state`` and the weights of the networks of ``_nets`` (arrays, tensors and JSON values)."""
        self._check_fitted()
        out = {"params": self.get_params()}
        for key, attr in self._state.items():
            out[key] = {a: getattr(self, a) for a in attr} if isinstance(attr, tuple) else getattr(self, attr, None)
        for key, attr in self._nets.items():
            out[key] = {k: v.detach().cpu() for k, v in getattr(self, attr).state_dict().items()}
        return out

    @classmethod
    def from_state(cls, state: dict):
        """Inverse of :meth:`state`: parameters, fitted attributes, then networks built by ``_new_net``
        (under a fixed local seed: the draws of their initialisation are discarded, the global random
        state is untouched) with the saved weights loaded, in eval mode."""
        self = cls._from_params(state["params"])
        for key, attr in cls._state.items():
            if isinstance(attr, tuple):
                for a in attr:
                    setattr(self, a, state[key][a])
            else:
                setattr(self, attr, state.get(key))
        self._restored()
        for key, attr in cls._nets.items():
            with local_torch_seed(0):
                net = self._new_net(key)
            net.load_state_dict(state[key])
            setattr(self, attr, net.eval())
        return self

    def _new_net(self, key: str) -> torch.nn.Module:  # pragma: no cover - by the classes with _nets
        """An untrained module of the fitted shape for the weights saved under ``key``."""
        raise NotImplementedError

    def _restored(self) -> None:
        """Adjust the attributes :meth:`from_state` set from a file (types JSON does not keep)."""
