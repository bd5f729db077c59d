import copy

import pytest
import yaml

from conftest import ROOT
from inference_bench.config_validation import ConfigError, validate_config

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture
def config():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_default_config_is_valid_and_gets_defaults(config):
    del config["export"]
    validate_config(config, SCHEMA)
    assert config["export"] == {"exporter": "torchscript", "opset": 17, "attn_implementation": "eager"}
    assert config["models"][0]["config_overrides"] == {}


def test_minimal_config_fills_every_section():
    config = {
        "models": [{"name": "m", "model_type": "bert"}],
        "hardware_tags": {"cpu": {"device": "cpu", "variants": ["pytorch"]}},
    }
    validate_config(config, SCHEMA)
    assert config["hardware"] == "cpu"
    assert config["benchmark"]["batch_sizes"] == [1, 16, 32]
    assert config["parity"]["int8"]["min_cosine"] == 0.99
    assert config["models"][0]["source"] == "random"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["benchmark"].update(batch_sizes=[0]), ["benchmark.batch_sizes[0]", "0", "minimum"]),
        (lambda c: c["benchmark"].update(batch_sizes=[-4]), ["benchmark.batch_sizes[0]", "-4"]),
        (lambda c: c["benchmark"].update(batch_sizes=[]), ["benchmark.batch_sizes", "[]"]),
        (lambda c: c["benchmark"].update(batch_sizes="16"), ["benchmark.batch_sizes", "'16'", "array"]),
        (lambda c: c["benchmark"].update(batchsizes=[1]), ["'batchsizes'", "did you mean 'batch_sizes'", "benchmark"]),
        (lambda c: c.update(modles=[]), ["'modles'", "top level"]),
        (lambda c: c["export"].update(opset="17"), ["export.opset", "'17'"]),
        (lambda c: c["hardware_tags"]["cpu"]["variants"].append("ort-int4"), ["hardware_tags.cpu.variants[", "'ort-int4'"]),
        (lambda c: c.update(hardware="tpu"), ["hardware", "'tpu'", "cpu"]),
        (lambda c: c["models"][0].update(source="hub", hub_id=None), ["models[0].hub_id", "None"]),
        (lambda c: c["models"][0].update(source="local"), ["models[0]", "'path'"]),
        (lambda c: c["models"][0].update(name="../outside"), ["models[0].name", "'../outside'"]),
        (lambda c: c.update(hardware="../../etc"), ["hardware", "'../../etc'"]),
        (lambda c: c["hardware_tags"].update({"a/b": c["hardware_tags"]["cpu"]}), ["hardware_tags", "'a/b'"]),
        (lambda c: c["benchmark"].update(sequence_lengths=[0]), ["benchmark.sequence_lengths[0]", "0"]),
    ],
)
def test_bad_config_names_key_and_value(config, mutate, expected):
    bad = copy.deepcopy(config)
    mutate(bad)
    with pytest.raises(ConfigError) as caught:
        validate_config(bad, SCHEMA)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message


def test_sequence_lengths_are_checked_against_downloaded_models(config, tmp_path):
    import json

    from inference_bench.config_validation import check_sequence_lengths

    validate_config(config, SCHEMA)
    check_sequence_lengths(config, tmp_path)  # nothing downloaded yet: the benchmark job will check
    manifest = tmp_path / "results" / "models" / config["models"][0]["name"] / "hf" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"architecture": {"max_positions": 64}}))
    with pytest.raises(ConfigError, match=r"sequence_lengths: 128 exceeds the max_position_embeddings \(64\)"):
        check_sequence_lengths(config, tmp_path)
