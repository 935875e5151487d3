"""lanas.transfer: a target's predictor from a few samples and another's predictor."""

import numpy as np
import pytest
import torch

from lanas.encoding import encode_genotype
from lanas.predictor import LatencyPredictor
from lanas.space import SearchSpace
from lanas.transfer import choose, fit_model, predict_np, select_diverse, table_np, transferred

SPACE = SearchSpace()


def random_predictor(seed: int) -> LatencyPredictor:
    torch.manual_seed(seed)
    p = LatencyPredictor.for_space(SPACE, (16,))
    with torch.no_grad():
        p.additive.weight.uniform_(0.05, 0.5)
        p.mlp[-1].weight.normal_(0, 0.05)
        p.mean.fill_(1.0)
        p.std.fill_(0.2)
    return p.eval()


@pytest.fixture(scope="module")
def archs():
    x = torch.stack([encode_genotype(g, SPACE) for g in SPACE.sample_unique(200, 0)])
    return x, table_np(LatencyPredictor.for_space(SPACE, ()), x)  # op counts per group, then merged ops


def test_an_affine_target_with_a_per_op_shift_is_recovered_from_few_samples(archs):
    """NEW = 0.1 + 2 * SRC + 0.3 per skip connection in the normal cell: the transfer
    finds it from 30 samples, where the rescaled source alone cannot."""
    x, groups = archs
    src = random_predictor(0)
    s = predict_np(src)(x)
    skip = SPACE.ops.index("skip_connect")
    y = 0.1 + 2.0 * s + 0.3 * groups[:, skip]
    name, fit, scores = choose(s[:30], groups[:30], y[:30])
    assert name == "affine+correction" and scores[name] < scores["scale"]
    assert np.abs(fit.predict(s[30:], groups[30:]) / y[30:] - 1).mean() < 0.01
    scale = fit_model("scale", s[:30], groups[:30], y[:30])
    assert np.abs(scale.predict(s[30:], groups[30:]) / y[30:] - 1).mean() > 0.03
    # the fit is a LatencyPredictor of the source's shape, predicting the same
    new = transferred(src, fit, x)
    assert np.allclose(predict_np(new)(x[30:]), fit.predict(s[30:], groups[30:]), rtol=1e-4)
    assert float(new.typical) == pytest.approx(float(np.median(predict_np(new)(x))), rel=1e-3)  # torch: lower middle


def test_a_pure_rescaling_is_kept_simple(archs):
    x, groups = archs
    src = random_predictor(1)
    s = predict_np(src)(x)
    name, fit, _ = choose(s[:10], groups[:10], 3.0 * s[:10])
    assert name == "scale" and fit.b == pytest.approx(3.0)


def test_too_few_samples_and_a_negative_scale_are_refused(archs):
    x, groups = archs
    src = random_predictor(2)
    s = predict_np(src)(x)
    with pytest.raises(ValueError, match="at least 3 measured architectures"):
        choose(s[:2], groups[:2], s[:2])
    with pytest.raises(ValueError, match="scale must be >= 0"):
        transferred(src, fit_model("affine", s[:20], groups[:20], 5.0 - s[:20]), x)


def test_a_source_that_ranks_the_target_backwards_gives_way_to_the_table_from_scratch(archs):
    """NEW falls as SRC rises (NEW = a table of its own, less SRC and what SRC explains of
    that table): every fit through the source has a negative scale, so the table fitted on
    NEW's own samples is taken, and the transferred predictor is that table (b = 0: the
    source's table and MLP switched off)."""
    x, groups = archs
    src = random_predictor(4)
    s = predict_np(src)(x)
    own = groups @ np.random.default_rng(0).uniform(0.05, 0.3, groups.shape[1])
    explained = max(np.polyfit(s, own, 1)[0], 0.0)  # both tables weigh every op positively
    y = 4.0 + own - (1.0 + explained) * s
    name, fit, scores = choose(s[:40], groups[:40], y[:40])
    assert fit_model("affine", s[:40], groups[:40], y[:40]).b < 0
    assert name == "table" and fit.b == 0 and scores["table"] < scores["scale"]
    new = transferred(src, fit, x)
    assert np.allclose(predict_np(new)(x[40:]), fit.predict(s[40:], groups[40:]), rtol=1e-4)
    scale = fit_model("scale", s[:40], groups[:40], y[:40])
    table_err = np.abs(predict_np(new)(x[40:]) / y[40:] - 1).mean()
    assert table_err < 0.03 and table_err < np.abs(scale.predict(s[40:], groups[40:]) / y[40:] - 1).mean() / 2


def test_diverse_picks_span_the_source_latency_and_are_deterministic(archs):
    x, groups = archs
    s = predict_np(random_predictor(3))(x)
    pick = select_diverse(s, groups, 20)
    assert len(set(pick)) == 20 and pick == select_diverse(s, groups, 20)
    spread = np.ptp(s[pick]) / np.ptp(s)
    rng = np.random.default_rng(0)
    random_spread = np.median([np.ptp(s[rng.choice(len(s), 20, replace=False)]) / np.ptp(s) for _ in range(50)])
    assert spread > random_spread
    with pytest.raises(ValueError, match="cannot pick 300 of 200"):
        select_diverse(s, groups, 300)


def test_the_report_says_when_the_table_from_scratch_replaced_the_transfer():
    from pipeline.report import transfer_sentence

    t = {"source": "cpu-t1-torch-b1", "hardware": "hw", "samples": 20, "model": "table",
         "loo_mape": {"scale": 0.09, "affine": 0.07, "affine+correction": 0.061, "table": 0.05}}  # fmt: skip
    text = transfer_sentence("cpu-t1-onnxruntime-b1", t)
    assert "lookup table fitted on its 20 measured architectures alone" in text
    assert "5.00%" in text and "affine+correction: 6.10%" in text and "transferred**" not in text
    text = transfer_sentence("cpu-t1-onnxruntime-b1", {**t, "model": "affine"})
    assert "**transferred** from `cpu-t1-torch-b1`" in text and "7.00%" in text
