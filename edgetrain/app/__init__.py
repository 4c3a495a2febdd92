"""Layer 6 of 6, the top: the `edgetrain` command (`cli`) and `make demo` (`demo`). Composition only:
parses arguments, opens what is needed from the layers below and reports. May import every layer."""
