"""The measuring stage (workflow/rules/measure.smk): one comparison per (tag, model, batch, sequence), every
variant timed in interleaved rounds of fresh worker processes behind a quiet-machine check (rounds.py,
worker.py, run.py, runners.py, timing.py, quiet.py); the machine's roofs (calibration.py, flops.py); the
intervals a number carries (statistics.py).

May import the core modules, `inputs`, `accuracy` and `build`; never `report`.
"""
