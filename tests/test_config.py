import pytest
from conftest import ROOT, lanas

from lanas_pipeline.config import ConfigError, RunConfig, config_from_dict, load_config


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "configs").glob("*.yaml")))
def test_shipped_profiles_load(name):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    assert isinstance(cfg, RunConfig) and cfg.name == name


@pytest.mark.parametrize(
    "data, message",
    [
        ({"serch": {}}, r"unknown config key serch \(valid keys here: .*search"),
        ({"search": {"settings": {"epochz": 3}}}, "unknown config key search.settings.epochz"),
        ({"search": {"lambdas": [0, "big"]}}, r"search.lambdas\[1\]: expected a number, got 'big'"),
        ({"search": {"lambdas": [0, -1]}}, "search: lambdas must be finite numbers >= 0"),
        ({"measure": {"num_archs": 0}}, "measure: num_archs must be > 0"),
        ({"measure": {"targets": [{"device": "tpu"}]}}, r"measure.targets\[0\]: device must be"),
        ({"measure": {"targets": [{"runtime": "onnx"}]}}, r"measure.targets\[0\]: runtime must be one of"),
        ({"measure": {"targets": [{}, {"threads": 1}]}}, "measure: targets must be distinct"),
        ({"measure": {"targets": []}}, "measure: targets must not be empty"),
        ({"measure": {"protocol": {"device": "cpu"}}}, "unknown config key measure.protocol.device"),
        ({"network": {"layers": "five"}}, "network.layers: expected an integer, got 'five'"),
        ({"data": {"dataset": "imagenet"}}, "data: dataset must be one of"),
        ({"fit": {"max_val_mape": 0}}, "fit: max_val_mape must be > 0"),
        ({"space": {"ops": ["sep_conv_9x9"]}}, "^space.ops: unknown ops"),
        ({"evaluate": {"train": {"epochs": True}}}, "evaluate.train.epochs: expected an integer, got True"),
    ],
)
def test_bad_config_names_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_overrides_and_identity():
    a = config_from_dict({})
    b = config_from_dict({}, {"measure.num_archs": 999})
    c = config_from_dict({}, {"search.settings.epochs": 3})
    assert b.measure.num_archs == 999 and a.identity() == b.identity() != c.identity()


@pytest.mark.parametrize(
    "key, default, other, bad, refused",
    [
        ("statistic", "pair_median", "p10s", "mean", "statistic must be one of pair_median, p10s, got 'mean'"),
        ("builds", 1, 3, 0, "builds must be >= 1, got 0"),
    ],
)
def test_a_newer_protocol_key_is_part_of_the_identity_only_when_it_is_not_the_default(
    key, default, other, bad, refused
):
    a = config_from_dict({})
    assert key not in a.identity_dict()["measure"]["protocol"]  # runs made before it keep their identity
    assert a.identity() == config_from_dict({}, {f"measure.protocol.{key}": default}).identity()
    changed = config_from_dict({}, {f"measure.protocol.{key}": other})
    assert changed.identity("measure") != a.identity("measure") and getattr(changed.measure.protocol, key) == other
    with pytest.raises(ConfigError, match=f"^measure\\.protocol: {refused}$"):
        config_from_dict({}, {f"measure.protocol.{key}": bad})


def test_cli_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsearch:\n  lambdas: [0, oops]\n")
    r = lanas(capsys, "measure", "--config", str(bad), "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 2
    assert r.stderr.strip() == "lanas: error: search.lambdas[1]: expected a number, got 'oops'"
    assert not (tmp_path / "run").exists()
    r = lanas(capsys, "measure", "--config", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "config file not found" in r.stderr
    bad.write_text("name: [unclosed\n")
    r = lanas(capsys, "fit", "--config", str(bad))
    assert r.returncode == 2 and "not valid YAML" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_unreachable_cluster_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    for cmd in ("measure", "reproduce"):
        r = lanas(
            capsys, cmd, "--config", "configs/smoke.yaml", "--run-dir", str(tmp_path / "r"), "--address", "127.0.0.1:9"
        )
        assert r.returncode == 2 and r.stderr.strip().splitlines() == [
            "lanas: error: cannot connect to the Ray cluster at 127.0.0.1:9: Connection refused"
        ], r.stderr
    assert not (tmp_path / "r").exists()
