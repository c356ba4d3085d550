"""A model's life after training: a finished run (run.py), tables of runs (table.py), and
sweeps over spec variants (sweep.py)."""
