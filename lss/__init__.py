"""lss: molecular latent space simulators.

A thin, tested library behind the notebooks that reproduce Sidky, Chen & Ferguson,
"Molecular latent space simulators", Chem. Sci. 2020, 11, 9459.

Modules (one per concept):

- :mod:`lss.paths`     where inputs, runs and figures live (anchored at the repository root)
- :mod:`lss.utils`     seeds, devices, hashing, input checks
- :mod:`lss.results`   ``figures/metrics.json`` and ``figures/REPORT.md``
- :mod:`lss.fourwell`  the 1-D four-well potential, Brownian dynamics and its exact reference
- :mod:`lss.mdn`       the mixture density network propagator
- :mod:`lss.reproduce` the papermill runner (``python -m lss.reproduce --profile cpu``)
"""

__version__ = "0.1.0"
