import json

import pytest

from lanas.genotype import PUBLISHED, Genotype, GenotypeError, published, read_jsonl
from lanas.space import SearchSpace


def _dict(g: Genotype) -> dict:
    return json.loads(g.to_json())


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_genotypes_load_and_round_trip(name):
    g = published(name)
    assert Genotype.from_json(g.to_json()) == g
    assert len(g.arch_id) == 40
    assert g.to_json() == json.dumps(_dict(g), sort_keys=True, separators=(",", ":"))


def test_darts_style_pairs_in_any_order_give_one_arch_id():
    g = published("darts_v1")
    d = _dict(g)
    d["normal"][0], d["normal"][1] = d["normal"][1], d["normal"][0]
    assert Genotype.from_dict(d) == g and Genotype.from_dict(d).arch_id == g.arch_id


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["normal"].__setitem__(3, ["conv_9x9", 1]), r"normal\[3\]: unknown op 'conv_9x9'"),
        (lambda d: d["reduce"].__setitem__(0, ["sep_conv_3x3", 2]), r"reduce\[0\]: input 2 is not valid for node 2"),
        (lambda d: d["normal"].__setitem__(1, list(d["normal"][0])), r"normal\[1\]: node 2 uses input \d twice"),
        (lambda d: d["normal"].__setitem__(2, ["none", 0]), r"normal\[2\]: 'none' cannot be a chosen op"),
        (lambda d: d["normal"].pop(), "normal: expected 8 pairs, got 7"),
        (lambda d: d.pop("reduce_concat"), "missing .*reduce_concat"),
        (lambda d: d.__setitem__("extra", 1), "unknown .*extra"),
        (lambda d: d["normal"].__setitem__(0, "sep_conv_3x3"), r"normal\[0\]: expected \[op_name, input_index\]"),
        (lambda d: d.__setitem__("normal_concat", [2, 3]), "normal_concat: must be"),
    ],
)
def test_validation_names_the_wrong_pair(mutate, message):
    d = _dict(published("darts_v2"))
    mutate(d)
    with pytest.raises(GenotypeError, match=message):
        Genotype.from_dict(d)


def test_invalid_json_and_op_outside_the_space():
    with pytest.raises(GenotypeError, match="not valid JSON"):
        Genotype.from_json("{nope")
    with pytest.raises(GenotypeError, match=r"unknown op 'skip_connect' \(space ops: none, sep_conv_3x3"):
        Genotype.from_json(published("pc_darts").to_json(), ops=("none", "sep_conv_3x3", "max_pool_3x3"))


def test_read_jsonl_names_the_bad_line(tmp_path):
    f = tmp_path / "g.jsonl"
    f.write_text(published("darts_v1").to_json() + "\n\n" + "{bad\n")
    with pytest.raises(GenotypeError, match=r"g.jsonl:3: not valid JSON"):
        read_jsonl(str(f))
    f.write_text(published("darts_v1").to_json() + "\n")
    assert read_jsonl(str(f)) == [published("darts_v1")]
    with pytest.raises(GenotypeError, match="cannot read genotypes file"):
        read_jsonl(str(tmp_path / "missing.jsonl"))


def test_sampling_is_seeded_valid_unique_and_extends():
    space = SearchSpace()
    a, b = space.sample_unique(30, seed=3), space.sample_unique(30, seed=3)
    assert a == b
    assert len({g.arch_id for g in a}) == 30
    assert space.sample_unique(40, seed=3)[:30] == a
    assert space.sample_unique(30, seed=4) != a
    for g in a:
        g.validate(space.ops)
        assert g.canonical() == g


def test_sampling_respects_a_subset_space():
    space = SearchSpace(ops=("none", "skip_connect", "sep_conv_3x3"))
    ops = {op for g in space.sample_unique(20, 0) for op, _ in g.normal + g.reduce}
    assert ops <= {"skip_connect", "sep_conv_3x3"}
    with pytest.raises(ValueError, match="unknown ops"):
        SearchSpace(ops=("sep_conv_9x9",))
