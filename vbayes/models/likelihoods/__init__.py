"""Likelihoods p(x | z) on the decoder's output, one module each, registered by name.

Each module's Config (a vbayes.parts.LikelihoodConfig) builds a
vbayes.models.interfaces.Likelihood; a new likelihood is a new module and one name below.
"""

from vbayes.models.likelihoods import bernoulli, continuous_bernoulli, gaussian  # registers them
