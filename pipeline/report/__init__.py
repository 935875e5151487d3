"""Stage 5 -- ``lanas report``: one accuracy-vs-latency front per target, and what
searching for the right target is worth.

Writes, in ``report/``:

* ``pareto.csv`` -- every (candidate, target) row with its front membership;
* ``pareto.png`` -- one panel per target: the architectures searched for it (colour:
  lambda), random ones as a grey cloud, latency-matched random ones as diamonds, the
  trivial no-convolution baseline as a cross, published ones as stars, and its front;
* ``latency_matrix.csv`` -- every candidate measured on every target;
* ``budgets.csv`` -- every latency budget (``search.budgets_ms``): predicted and measured
  latency, accuracy, ``met`` (measured <= budget), the best lambda-sweep architecture under it;
* ``specialisation.csv`` / ``.png`` -- for targets A != B, the architecture searched for A
  measured on B against the one searched for B, at the same lambda and seed;
* ``methods.png`` -- every search method's front on every target (``search.methods``:
  LA-DNAS against lut, flops and random search; :mod:`pipeline.compare`);
* ``report.html`` -- the same as one self-contained page (figures embedded, tables sortable);
* ``report.md`` -- all of it, with the method comparison (intervals over search seeds,
  verdicts), hypervolume, latency saved at equal-or-better
  accuracy versus lambda = 0, prediction error, the predictors side by side and the
  run manifest.

Latency is the *measured* one: the reference-normalised ratio times the target's median
reference latency (``measured_latency_ms``), so runs drifting on a shared CPU compare.

One module per concern: :mod:`.analysis` (fronts, hypervolume, comparisons, budgets),
:mod:`.tables` (the CSV files), :mod:`.plots` (matplotlib), :mod:`.markdown` (report.md's
sections), :mod:`.html` (report.html) and :mod:`.stage` (what ``lanas report`` runs).

The package imports none of them: a Ray worker that runs one (a trial, a Train worker)
imports that module and what it needs, not the whole stage. Import the module itself,
e.g. ``from lanas_pipeline.report.stage import run_report``.
"""
