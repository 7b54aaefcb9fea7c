"""lss: molecular latent space simulators.

A thin, tested library behind the notebooks that reproduce Sidky, Chen & Ferguson,
"Molecular latent space simulators", Chem. Sci. 2020, 11, 9459.

Modules, by layer (a module imports only its own layer or those below; ``tests/test_layering.py``):

ground
- :mod:`lss.paths`     where inputs, runs and figures live (anchored at the repository root)
- :mod:`lss.utils`     seeds (local, never global), devices, hashing, input checks, JSON, peak memory
- :mod:`lss.persist`   the one file format: arrays + JSON in a zip, never unpickled; format-tag registry
- :mod:`lss.base`      the estimator contract (get_params/set_params, _check_fitted, to, save/load)
- :mod:`lss.stats`     contiguous blocks, pieces, block errors, total variation
- :mod:`lss.structure` C-alpha chain geometry: superposition (Kabsch), RMSD, bonds, the fixed-geometry
                        projection, nearest-frame RMSD, coherence in time
- :mod:`lss.trajio`    DCD/XTC/HDF5 reading and writing, topologies, generated ensembles on disk
- :mod:`lss.latent`    the latent trajectory file shared by the notebooks
- :mod:`lss.results`   ``figures/metrics.json``, ``figures/REPORT.md`` and the declared targets
- :mod:`lss.viewer`    the 3-D viewer (nglview behind one guard) with a static figure for every reader

concepts
- :mod:`lss.fourwell`  the 1-D four-well potential, Brownian dynamics and its exact reference
- :mod:`lss.gomodel`   the embedded default data: a C-alpha structure-based model of Trp-cage (OpenMM)
- :mod:`lss.features`  roto-translationally invariant features, their scaler, and the Encoder
- :mod:`lss.srv`       the SRV encoder (state-free reversible VAMPnet)
- :mod:`lss.mdn`       the mixture density network propagator
- :mod:`lss.decoder`   what every decoder shares (MD's bonds and angles imposed)
- :mod:`lss.cwgan`     the conditional Wasserstein GAN decoder (the paper's)
- :mod:`lss.flow`      the conditional normalizing-flow decoder (zuko; maximum likelihood, held-out score)
- :mod:`lss.msm`       MSM helpers, the MSM baseline, the Chapman-Kolmogorov test, label transfer (deeptime)
- :mod:`lss.kinetics`  autocorrelations, relaxation and integrated times, the lag rule, first passages
- :mod:`lss.analysis`  free energies, TICA

composed
- :mod:`lss.data`       Trp-cage datasets: the Go-model simulation (cached) and the DESRES loader
- :mod:`lss.pipeline`   the generation pipeline: propagation and decoding seeded per segment, in two threads
- :mod:`lss.simulator`  the three networks joined: fast batched generation, one-file save/load
- :mod:`lss.decoding`   decoders side by side: the held-out yardstick, novelty, the table, the targets
- :mod:`lss.score`      the scorecard against a converged reference (``lss score``)
- :mod:`lss.compare`    notebook 07's comparisons: the ensembles, the scorecard's figures and tables, the targets
- :mod:`lss.efficiency` data efficiency against the truth: MD error curve, amplification, coverage
- :mod:`lss.adaptive`   adaptive sampling guided by the simulator
- :mod:`lss.plots`      the figures of the notebooks, one function each

outer
- :mod:`lss.reproduce` the papermill runner (``python -m lss.reproduce --profile cpu``), a profile picked
                        in JupyterLab (``apply_profile``), measured run times (``notebooks/runtimes.json``)
- :mod:`lss.notebook`  what every notebook shares: set-up, upstream artifacts (errors naming the notebook
                        that writes them), timers, closing
- :mod:`lss.cli`       the ``lss generate`` / ``lss info`` / ``lss score`` command line
- :mod:`lss.site`      the course site: executed notebooks as HTML, the learning path as index (``make site``)
- :mod:`lss.exercises` exercises that check themselves: declarations, the check, the test run's self-check
"""

__version__ = "0.1.0"
