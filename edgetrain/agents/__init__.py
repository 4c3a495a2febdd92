"""Reinforcement-learning agents, baselines, evaluation and deployment of learned scheduling policies."""
