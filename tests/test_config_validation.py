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
    assert config["hardware"] == "auto"
    assert config["benchmark"]["batch_sizes"] == [1, 32] and config["benchmark"]["sequence_lengths"] == [16, 128]
    assert config["parity"]["int8"]["min_cosine"] == 0.9  # a floor: the accuracy gate decides
    assert config["accuracy"] == {"max_length": 512, "min_relative": 0.99, "dataset": None}
    assert config["int8"] == {"per_channel": True, "reduce_range": False, "calibration_method": "minmax",
                              "mixed_base": "dynamic", "mixed_margin": 0.002, "mixed_for_text_models": True}
    assert config["recommend"] == {"max_p99_ms": None, "min_accuracy_relative": None}
    assert config["benchmark"]["processes"] == 3 and config["regression"]["against"] == "HEAD"
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
        # Accepted silently before: each would have measured something else than the user asked for.
        (lambda c: c["benchmark"].update(batch_sizes=[1, 2.0]), ["benchmark.batch_sizes[1]", "2.0", "integer"]),
        (lambda c: c["parity"]["int8"].update(min_cosine=-1), ["parity.int8.min_cosine", "-1"]),
        (lambda c: c["benchmark"].update(processes=5, max_processes=4),
         ["benchmark.processes", "5", "max_processes", "4"]),
        (lambda c: c["models"][0].update(name="models"), ["models[0].name", "'models'", "reserved"]),
        (lambda c: c["models"][0].update(name="calibration.json"), ["models[0].name", "'calibration.json'"]),
        (lambda c: c["hardware_tags"].update(models=c["hardware_tags"]["cpu"]), ["hardware_tags", "'models'"]),
        (lambda c: c["hardware_tags"]["cpu"]["resources"].update(mem_mb="16G"),
         ["hardware_tags.cpu.resources.mem_mb", "'16G'", "integer"]),
        (lambda c: c["hardware_tags"]["cpu"]["resources"].update(gpu=0.5), ["resources.gpu", "0.5"]),
        (lambda c: c["hardware_tags"]["cpu"]["variants"].append("ort-fp16-cudagraph"),
         ["hardware_tags.cpu.variants[7]", "'ort-fp16-cudagraph' runs on cuda only"]),
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


def test_a_key_written_twice_names_file_and_lines(tmp_path):
    from inference_bench.config_validation import check_config_files

    path = tmp_path / "config.yaml"
    path.write_text("benchmark:\n  batch_sizes: [1]\n  seed: 0\n  batch_sizes: [64]\n")
    with pytest.raises(ConfigError, match=r"config.yaml line 4: key 'batch_sizes' is written twice .*first at line 2"):
        check_config_files([path])
    check_config_files([ROOT / "config" / "config.yaml"])  # the shipped config reads cleanly


def test_malformed_yaml_names_file_line_and_column(tmp_path):
    from inference_bench.config_validation import check_config_files

    path = tmp_path / "config.yaml"
    path.write_text("benchmark:\n  batch_sizes: [1, 2\n  seed: 0\n")
    with pytest.raises(ConfigError, match=r"config error in .*config.yaml line 3, column \d+: .*not valid YAML"):
        check_config_files([path])


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ({"model_type": "distilbrt"}, ["unknown model_type 'distilbrt'", "did you mean 'distilbert'", "CONFIG_MAPPING"]),
        ({"model_type": "bert", "config_overrides": {"num_hiden_layers": 2}},
         ["config_overrides.num_hiden_layers is not a field of BertConfig", "did you mean 'num_hidden_layers'"]),
        ({"model_type": "bert", "config_overrides": {"hidden_size": -32}},
         ["config_overrides.hidden_size must be a positive integer, got -32"]),
        ({"model_type": "distilbert", "config_overrides": {"n_layers": 2.5}}, ["config_overrides.n_layers", "2.5"]),
        ({"model_type": "bert", "config_overrides": {"hidden_size": 100, "num_attention_heads": 3}},
         ["hidden size 100 is not a multiple of the 3 attention heads"]),
    ],
)
def test_random_models_that_would_build_something_else_stop_before_any_job(tmp_path, model, expected):
    from inference_bench.config_validation import check_model_sources
    from inference_bench.errors import PipelineError

    config = {"models": [{"name": "m", "source": "random", "seed": 0, "config_overrides": {}, **model}]}
    with pytest.raises(PipelineError) as caught:
        check_model_sources(config, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    for fragment in expected:
        assert fragment in message


def test_local_model_problems_name_the_source_path(tmp_path):
    from inference_bench.config_validation import check_model_sources
    from inference_bench.errors import PipelineError

    def config(path):
        return {"models": [{"name": "m", "source": "local", "path": str(path)}]}

    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(PipelineError, match=r"local path '.*loop' cannot be opened"):
        check_model_sources(config(loop), tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert", ')
    with pytest.raises(PipelineError, match=r".*broken/config.json is not valid JSON"):
        check_model_sources(config(broken), tmp_path)


def test_a_labelled_dataset_is_checked_before_any_job(tmp_path):
    from inference_bench.config_validation import ConfigError, check_labelled_dataset

    classifier = {"name": "c", "source": "local", "path": "x", "task": "sequence-classification"}
    config = {"models": [classifier], "accuracy": {"dataset": str(tmp_path / "missing.csv")}}
    with pytest.raises(ConfigError, match="accuracy.dataset: .*missing.csv' is not a file"):
        check_labelled_dataset(config)
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("sentence,label\nfine,1\n")
    config["accuracy"]["dataset"] = str(labelled)
    with pytest.raises(ConfigError, match="needs a header with the columns text and label"):
        check_labelled_dataset(config)
    labelled.write_text("text,label\nfine,1\n")
    check_labelled_dataset(config)
    config["models"] = [{"name": "r", "source": "random", "model_type": "bert", "task": "sequence-classification"}]
    with pytest.raises(ConfigError, match="no model of this run reads it"):
        check_labelled_dataset(config)
