"""Latent-variable models composed of parts.

    interfaces.py   the protocols: Prior(init, distribution), Proposal(init, distribution,
                    sample), Likelihood(log_prob, ..._of_samples, ..._matrix, mean, sample)
    networks/       encoder and decoder nets, by name     mlp, gated, conv
    likelihoods/    p(x | z) on the decoder's output      bernoulli, gaussian, continuous_bernoulli
    priors/         p(z)                                   standard_normal, vamp, mixture, two_layer
    proposals/      q(z | x)                               gaussian, iaf, implicit, prior
    config.py       ModelConfig: one part of each family (vbayes.parts)
    vae.py          the composed Model and build(ModelConfig)
    nets.py, conv_nets.py, flows.py, hierarchical.py   what the parts are made of
"""

from vbayes.models.config import ModelConfig
from vbayes.models.vae import Model, as_model, build

__all__ = ["Model", "ModelConfig", "as_model", "build"]
