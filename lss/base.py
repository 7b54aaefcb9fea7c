"""The estimator contract shared by every lss model (scikit-learn / deeptime habits).

- The constructor only stores its arguments, under their own names; :meth:`Estimator.get_params`
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

A subclass sets ``_format`` (e.g. ``"lss.srv/2"``) to be saveable and registered, implements
``state()`` / ``from_state(state)``, and may name in ``_fitted_attr`` the attribute whose presence
means "fitted" (default: any public attribute ending in ``_``).
"""
from __future__ import annotations

import inspect

import torch

from .persist import Persistable
from .utils import get_device


class Estimator(Persistable):
    """Base of the lss estimators: parameters from the signature, fitted state, device, files."""

    #: Attribute that exists only once fitted (default: any public attribute ending in ``_``).
    _fitted_attr: str | None = None

    # ------------------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        """Names of the constructor's parameters (``self``, ``*args``, ``**kwargs`` excluded)."""
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

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
