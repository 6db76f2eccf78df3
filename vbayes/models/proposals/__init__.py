"""Proposals q(z | x), one module each, registered by name.

Each module's Config (a vbayes.parts.ProposalConfig) builds a
vbayes.models.interfaces.Proposal (None for "prior": the prior proposes) and says what
it offers ("density", "reparameterized", ...); a new proposal is a new module and one
name below.
"""

from vbayes.models.proposals import gaussian, iaf, implicit, prior  # registers them
