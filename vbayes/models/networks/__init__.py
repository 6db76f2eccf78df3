"""Encoder and decoder networks, one module each, registered by name.

Each module's Config (a vbayes.parts.NetworkConfig) builds the pair (encoder net,
decoder net) of vbayes.models.nets.Net; a new network is a new module and one name below.
"""

from vbayes.models.networks import conv, gated, mlp  # registers them
