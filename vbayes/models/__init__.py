"""Latent-variable models composed of parts.

    priors.py       p(z)                       Prior(init, distribution)
    proposals.py    q(z | x)                   Proposal(init, distribution, sample)
    likelihoods.py  p(x | z) on decoder output Likelihood(log_prob, ..._of_samples, ..._matrix)
    nets.py         networks                   Net(init, apply): the MLP
    vae.py          the composed Model and build(ModelConfig)
"""

from vbayes.models.vae import Model, as_model, build

__all__ = ["Model", "as_model", "build"]
