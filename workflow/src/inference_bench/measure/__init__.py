"""The measuring stage (workflow/rules/measure.smk): one comparison per (tag, model, batch, sequence), every
variant timed side by side in generations of fresh worker processes taking turns in blocks, behind a
quiet-machine check, until its speedups are known or its budget is spent (rounds.py, worker.py, run.py,
runners.py, timing.py, quiet.py); the machine's roofs (calibration.py, flops.py); the
intervals a number carries (statistics.py).

May import the core modules, `inputs`, `accuracy` and `build`; never `report`.
"""
