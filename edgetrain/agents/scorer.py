"""The policy network: one scorer shared by every offered plan, so that what it learns does not depend on
which row of the offer a plan sits in, nor on the fleet it was learned on.

EdgeTrain-v0 offers up to `MAX_CANDIDATES` plans, each a row of `CANDIDATE_FEATURES` physical,
normalised features, and the job's features (`edgetrain.envs.candidates`). SB3's default MLP reads the
flattened rows, so it learns row-by-row patterns of the fleets it trained on (a general student that
departed from greedy on smart-home-sessions cost 1.27x greedy on a fleet it had not seen). Here every
row is scored by the same network from its own features, the job's, and the mean and the maximum of the
offer's rows (what the other options are), in the manner of Deep Sets (Zaheer et al., NeurIPS 2017):
the logits are permutation-equivariant in the rows, the value invariant.

Measured no better than the MLP, so not the default (`edgetrain train --network scorer`): general
policies trained on the same tasks (scratch runs, 8 episodes, seeds 5000-5007, Zeus cost / greedy's):
with link variation and DAgger, imitation only, scorer 0.965 on smart-home-sessions, 1.042 on the
held-out lab-sessions, 1.0005 on smart-home; the MLP 0.969, 1.027, 1.000. Without DAgger, after 100k PPO
steps, the scorer was 1.03-1.05x greedy on smart-home, where the MLP ties.
"""

from __future__ import annotations

import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from torch import nn

from edgetrain.envs.candidates import CANDIDATE_FEATURES, JOB_FEATURES, MAX_CANDIDATES


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers)


class OfferScorer(nn.Module):
    """`forward(observation) -> (logits per row, the critic's latent)` for SB3's actor-critic."""

    def __init__(self, hidden: list[int]):
        super().__init__()
        row_input = CANDIDATE_FEATURES + JOB_FEATURES + 2 * CANDIDATE_FEATURES
        self.rows = _mlp([row_input] + hidden)
        self.score = nn.Linear(hidden[-1], 1)
        self.critic = _mlp([2 * hidden[-1] + JOB_FEATURES] + hidden)
        self.latent_dim_pi = MAX_CANDIDATES  # the logits themselves: the policy's action net is the identity
        self.latent_dim_vf = hidden[-1]

    def _embed(self, observation: torch.Tensor):
        rows = observation[:, :MAX_CANDIDATES * CANDIDATE_FEATURES].reshape(-1, MAX_CANDIDATES, CANDIDATE_FEATURES)
        job = observation[:, MAX_CANDIDATES * CANDIDATE_FEATURES:]
        valid = rows[:, :, :1]  # feature 0: the row holds an offer
        count = valid.sum(dim=1).clamp(min=1.0)
        mean = (rows * valid).sum(dim=1) / count
        top = (rows * valid - (1.0 - valid) * 1e3).max(dim=1).values.clamp(min=0.0)
        context = torch.cat([job, mean, top], dim=1).unsqueeze(1).expand(-1, MAX_CANDIDATES, -1)
        embedded = self.rows(torch.cat([rows, context], dim=2))
        return embedded, valid, count, job

    def forward_actor(self, observation: torch.Tensor) -> torch.Tensor:
        embedded, _, _, _ = self._embed(observation)
        return self.score(embedded).squeeze(-1)

    def forward_critic(self, observation: torch.Tensor) -> torch.Tensor:
        embedded, valid, count, job = self._embed(observation)
        mean = (embedded * valid).sum(dim=1) / count
        top = (embedded * valid - (1.0 - valid) * 1e3).max(dim=1).values
        return self.critic(torch.cat([mean, top, job], dim=1))

    def forward(self, observation: torch.Tensor):
        return self.forward_actor(observation), self.forward_critic(observation)


class OfferScorerPolicy(MaskableActorCriticPolicy):
    """MaskablePPO's actor-critic with the shared offer scorer in place of the MLP (`net_arch`: its
    hidden sizes, a list of ints)."""

    def _build_mlp_extractor(self) -> None:
        hidden = list(self.net_arch) if isinstance(self.net_arch, (list, tuple)) and self.net_arch else [128, 128]
        self.mlp_extractor = OfferScorer(hidden).to(self.device)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()  # a Linear over the rows' logits would tie each action to a row
        nn.init.orthogonal_(self.mlp_extractor.score.weight, gain=0.01)
        nn.init.zeros_(self.mlp_extractor.score.bias)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)
