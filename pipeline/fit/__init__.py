"""Stage 2 -- ``lanas fit``: one Ray Train job fits a latency predictor per target.

For each target, reads its hardware partition of the stage-1 dataset with Ray Data,
keeps the rows of the run's measurement setting, drops failed rows and non-finite or
non-positive latencies (counted), and splits by origin (:func:`split_row`): random
samples train/test by a hash of ``arch_id`` (deterministic, stable as the dataset grows,
the same split on every target; coverage samples' test rows are scored apart), the
architectures a search round derived always train, the published genotypes are only
scored. Two candidates are weighed by k-fold cross-validation over the training rows
(:func:`lanas.quality.select_model`): the additive lookup table (closed form) and
additive + MLP, which one ``TorchTrainer`` job trains data-parallel for every target and
fold, then on all rows (one Train job, not one per target: each costs ~25 s of start-up
here). The chosen predictor is scored beside the lookup-table, tree-ensemble and FLOPs
baselines on the random test split (with a paired bootstrap interval of its MAPE
difference to the best baseline) and on the out-of-distribution sets. Output:
``fit/<hardware id>/`` (predictor, its metadata, ``metrics.md``, ``scatter.png``) and
``fit/metrics.md``, all targets side by side.

One module per concern: :mod:`.data` (rows and splits), :mod:`.train` (the Ray Train
loop and its driver), :mod:`.select` (model selection, baselines, scores), :mod:`.render`
(metrics.md and the scatter plot), :mod:`.predict` (``lanas predict``) and :mod:`.stage`
(what ``lanas fit`` runs).

The package imports none of them: a Ray worker that runs one (a trial, a Train worker)
imports that module and what it needs, not the whole stage. Import the module itself,
e.g. ``from lanas_pipeline.fit.stage import run_fit``.
"""
