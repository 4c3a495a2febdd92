"""Layer 1 of 6, the floor: what every layer shares, importing nothing of the project.

Scenario configs (`config`, loaded by `scenario`), plans (`plans`), errors (`errors`), the device
profile catalog (`catalog`), the profile energy formula (`power`), availability traces
(`availability`), the model's sizes and stage cuts (`sizing`), its memory need (`memory`), whether a
plan can run (`feasibility`), calibration files (`calibration`), the Zeus cost (`objective`) and the
rules runtime, testbed and simulator share (`rules`).

May import: nothing of edgetrain; no torch, no gymnasium, no mininet (CI checks it).
"""
