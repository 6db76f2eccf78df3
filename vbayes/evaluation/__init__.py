"""Evaluation of trained models.

    importance_sampling.py  importance-sampled log p(x) (chunked k), the test-set
                            metrics (ELBO parts, active units), proposals for it
    grid.py                 2-D latents on a grid: quadrature log p(x), the exact
                            posterior, KL divergences between gridded densities
    gradient_snr.py         per-parameter signal-to-noise of gradient estimators
"""
