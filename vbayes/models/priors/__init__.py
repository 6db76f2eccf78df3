"""Priors p(z), one module each, registered by name.

Each module's Config (a vbayes.parts.PriorConfig) builds a vbayes.models.interfaces.Prior;
a new prior is a new module and one name below.
"""

from vbayes.models.priors import mixture, standard_normal, two_layer, vamp  # registers them
