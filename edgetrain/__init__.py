"""edgetrain: learn how to train a Transformer on a group of trusted edge devices.

This package holds what every layer shares (scenario configs, device profiles, plans, errors)
and the `edgetrain` command. The layers themselves are the sibling packages `runtime`,
`emulation`, `envs` and `agents`.
"""

__version__ = "0.1.0"
