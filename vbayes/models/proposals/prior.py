"""No encoder: the prior is the proposal (prior importance sampling trains the decoder alone)."""

import dataclasses

from vbayes.parts import ProposalConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(ProposalConfig):
  """No settings, no parameters: estimators draw z ~ p(z) for every image."""
  name = "prior"
  offers = frozenset({"prior"})

  def build(self, model, encoder_net):
    del model, encoder_net
    return None
