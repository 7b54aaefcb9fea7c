"""lss: molecular latent space simulators.

A thin, tested library behind the notebooks that reproduce Sidky, Chen & Ferguson,
"Molecular latent space simulators", Chem. Sci. 2020, 11, 9459.

Modules (one per concept):

- :mod:`lss.paths`     where inputs, runs and figures live (anchored at the repository root)
- :mod:`lss.utils`     seeds (local, never global), devices, hashing, input checks
- :mod:`lss.persist`   the one file format: arrays + JSON in a zip, never unpickled; format-tag registry
- :mod:`lss.base`      the estimator contract (get_params/set_params, _check_fitted, to, save/load)
- :mod:`lss.trajio`    DCD/XTC/HDF5 reading and writing, topologies, generated ensembles on disk
- :mod:`lss.results`   ``figures/metrics.json`` and ``figures/REPORT.md``
- :mod:`lss.fourwell`  the 1-D four-well potential, Brownian dynamics and its exact reference
- :mod:`lss.mdn`       the mixture density network propagator
- :mod:`lss.gomodel`   the embedded default data: a C-alpha structure-based model of Trp-cage (OpenMM)
- :mod:`lss.data`      Trp-cage datasets: the Go-model simulation (cached) and the DESRES loader
- :mod:`lss.features`  roto-translationally invariant features (C-alpha, all-atom), their scaler, and the
                        Encoder (featurizer + scaler + SRV, one file)
- :mod:`lss.srv`       the SRV encoder (state-free reversible VAMPnet)
- :mod:`lss.latent`    the latent trajectory file shared by the notebooks
- :mod:`lss.structure` C-alpha chain geometry: superposition (Kabsch), RMSD, bonds, the fixed-bond projection
- :mod:`lss.cwgan`     the conditional Wasserstein GAN decoder (the paper's)
- :mod:`lss.flow`      the conditional normalizing-flow decoder (zuko; maximum likelihood, held-out score)
- :mod:`lss.decoding`  decoders side by side: the held-out yardstick, the table, the targets
- :mod:`lss.simulator` the three networks joined: fast batched generation, one-file save/load
- :mod:`lss.cli`       the `lss generate` / `lss info` command line
- :mod:`lss.analysis`  free energies, relaxation times, structures, TICA, transitions
- :mod:`lss.msm`       MSM helpers, the MSM baseline and the Chapman-Kolmogorov test (deeptime)
- :mod:`lss.plots`     the figures of the notebooks, one function each
- :mod:`lss.viewer`    the 3-D viewer (nglview behind one guard) with a static figure for every reader
- :mod:`lss.reproduce` the papermill runner (``python -m lss.reproduce --profile cpu``), a profile picked
                        in JupyterLab (``apply_profile``), measured run times (``notebooks/runtimes.json``)
- :mod:`lss.site`      the course site: executed notebooks as HTML, the learning path as index (``make site``)
"""

__version__ = "0.1.0"
