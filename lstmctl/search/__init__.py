"""Hyperparameter search on Optuna: `lstmctl tune` and `lstmctl sweep --grid` (the grid sampler).

    space.py      the search space: `search:` in a config and `--param KEY=SPACE`, as Optuna distributions
    storage.py    where a study lives (a journal file in the runs directory, or a database URL),
                  heartbeats, the one place Optuna is imported (lazily: it is an optional extra)
    trial.py      one trial: a sampled config, validated, trained as an ordinary run tagged with the
                  study and trial number, its monitored value reported each epoch to the pruner
    driver.py     a study: samplers, pruners, the trial budget, stale and interrupted trials
    report.py     what `tune show` reports: the trials, the best, best.yaml
    figures.py    the study's figures (matplotlib; only `tune show` draws them)

This package's __init__ imports nothing, so each module is imported only where it is used.
"""
