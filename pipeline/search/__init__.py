"""Stage 3 -- ``lanas search``: one Ray Tune sweep over target x (lambda or budget) x seed.

Each trial runs :func:`lanas.search.search` with the frozen, quality-gated predictor of
its target (stage 2). lambda = 0 ignores latency, so it is the same search for every
target: it runs once per seed and serves them all. A latency budget
(``search.budgets_ms``, ``--budget-ms``) is a trial of its own that adapts lambda until
the derived architecture is predicted inside the budget (:mod:`lanas.budget`); a budget
no architecture of the space can meet is refused before anything runs. The stage is
incremental: trials already in ``results.jsonl`` are kept and not run again, so budgets
can be added to a finished run. The trial's ``on_epoch`` hook reports the epoch's
metrics to Tune with a checkpoint, so a failed trial is retried from its last epoch
(``FailureConfig``) and an interrupted sweep continues with ``--resume``
(``Tuner.restore``) from the state Tune last saved: a trial whose last report came after
that save re-runs its last epoch. results.jsonl holds each trial once, with the epoch it
last resumed from (``resumed_from_epoch``, 0 if it ran through). Tune's result.json is
not a complete history after a restore: Tune copies it back from the storage copy, which
can lag the trial's last reports, so epochs before the restore may be missing or listed
twice. Tune's own outputs (result.json, progress.csv, TensorBoard events) stay under
``search/tune/``; the derived genotypes are collected in ``search/results.jsonl``.

After the sweep, its derived architectures are measured on every target into the
stage-1 dataset and the predictors scored on them (``search/rounds.jsonl``). With
``search.rounds: R`` this is a closed loop: the predictors are refitted with those rows
and the sweep runs again, R more times (earlier rounds in ``search/round<r>/``).

One module per concern: :mod:`.plan` (the trials: method, target, lambda or budget,
seed), :mod:`.penalties` (the models a trial minimises, and which budgets are
reachable), :mod:`.trainable` (one Tune trial), :mod:`.results` (a finished trial's rows)
and :mod:`.stage` (the Tune sweep and ``lanas search``); the rounds of the closed loop are
:mod:`pipeline.closed_loop`.

The package imports none of them: a Ray worker that runs one (a trial, a Train worker)
imports that module and what it needs, not the whole stage. Import the module itself,
e.g. ``from lanas_pipeline.search.stage import run_search``.
"""
