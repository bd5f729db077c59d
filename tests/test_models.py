import json

import pytest

from conftest import MODEL_TYPES, tiny_spec
from inference_bench.models import ArchitectureFacts, ModelSourceError, ModelSpec, prepare_model_dir


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_random_source_writes_safetensors_and_manifest(tiny_models, model_type):
    model_dir = tiny_models[model_type]
    assert (model_dir / "config.json").is_file()
    assert (model_dir / "model.safetensors").is_file()
    assert not list(model_dir.glob("*.bin"))
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["origin"]["source"] == "random"
    assert set(manifest["files"]) == {"config.json", "model.safetensors"}
    assert len(manifest["files"]["model.safetensors"]["sha256"]) == 64
    facts = ArchitectureFacts.from_model_dir(model_dir)
    assert (facts.model_type, facts.num_layers, facts.num_heads, facts.hidden_size) == (model_type, 2, 2, 32)


def test_random_weights_are_seeded(tmp_path):
    first = prepare_model_dir(tiny_spec("bert", seed=3), tmp_path / "a")
    again = prepare_model_dir(tiny_spec("bert", seed=3), tmp_path / "b")
    other = prepare_model_dir(tiny_spec("bert", seed=4), tmp_path / "c")
    digest = lambda d: json.loads((d / "manifest.json").read_text())["files"]["model.safetensors"]["sha256"]  # noqa: E731
    assert digest(first) == digest(again) != digest(other)


def test_distilbert_defaults_have_the_real_checkpoint_shape(tmp_path):
    from transformers import AutoConfig

    facts = ArchitectureFacts.from_hf_config(AutoConfig.for_model("distilbert"))
    assert (facts.num_layers, facts.num_heads, facts.hidden_size, facts.intermediate_size) == (6, 12, 768, 3072)


def test_local_source_copies_allowed_files_only(tiny_models, tmp_path):
    source = tmp_path / "downloaded"
    source.mkdir()
    for name in ("config.json", "model.safetensors"):
        (source / name).write_bytes((tiny_models["bert"] / name).read_bytes())
    (source / "pytorch_model.bin").write_bytes(b"pickle")
    (source / "modeling_evil.py").write_text("import os")
    out = prepare_model_dir(ModelSpec(name="local", source="local", path=str(source)), tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "manifest.json", "model.safetensors"]


def test_local_source_missing_directory(tmp_path):
    spec = ModelSpec(name="gone", source="local", path=str(tmp_path / "nowhere"))
    with pytest.raises(ModelSourceError, match="'gone'.*does not exist"):
        prepare_model_dir(spec, tmp_path / "out")


def test_local_source_with_pickle_weights_only_is_refused(tiny_models, tmp_path):
    source = tmp_path / "pickled"
    source.mkdir()
    (source / "config.json").write_bytes((tiny_models["bert"] / "config.json").read_bytes())
    (source / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelSourceError, match="no \\*.safetensors.*convert them to safetensors"):
        prepare_model_dir(ModelSpec(name="pickled", source="local", path=str(source)), tmp_path / "out")


def test_hub_unreachable_says_what_to_use_instead(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    spec = ModelSpec(name="hubbed", source="hub", hub_id="distilbert/distilbert-base-uncased", revision="main")
    with pytest.raises(ModelSourceError, match="source: local.*source: random"):
        prepare_model_dir(spec, tmp_path / "out")


def test_hub_failure_leads_with_the_cause_in_one_short_line(tmp_path, monkeypatch):
    import huggingface_hub

    def offline(**kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'.\n" + "details\n" * 200)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    spec = ModelSpec(name="hubbed", source="hub", hub_id="org/model", revision="main")
    with pytest.raises(ModelSourceError) as caught:
        prepare_model_dir(spec, tmp_path / "out")
    message = str(caught.value)
    assert message.startswith("model 'hubbed': cannot download 'org/model'") and "\n" not in message
    assert len(message) < 600 and "source: local" in message


def test_a_truncated_local_weight_file_is_named_by_its_source_path(tiny_models, tmp_path):
    source = tmp_path / "checkpoint"
    source.mkdir()
    (source / "config.json").write_bytes((tiny_models["bert"] / "config.json").read_bytes())
    weights = (tiny_models["bert"] / "model.safetensors").read_bytes()
    (source / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    spec = ModelSpec(name="half", source="local", path=str(source))
    with pytest.raises(ModelSourceError, match=r".*checkpoint/model.safetensors is not a readable safetensors file"):
        prepare_model_dir(spec, tmp_path / "out")
    from inference_bench.models import local_source_files

    assert [p.name for p in local_source_files(spec)] == ["config.json", "model.safetensors"]


def test_spec_requires_the_key_its_source_needs():
    with pytest.raises(ModelSourceError, match="needs 'hub_id'"):
        ModelSpec(name="x", source="hub")


def test_hub_download_asks_for_safe_files_only_and_records_them(tiny_models, tmp_path, monkeypatch):
    import huggingface_hub

    snapshot = tmp_path / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((tiny_models["bert"] / name).read_bytes())
    asked = {}

    def fake_snapshot_download(**kwargs):
        asked.update(kwargs)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    spec = ModelSpec(name="hubbed", source="hub", hub_id="org/model", revision="0123abcd")
    out = prepare_model_dir(spec, tmp_path / "out")
    assert asked["repo_id"] == "org/model" and asked["revision"] == "0123abcd"
    patterns = asked["allow_patterns"]
    assert "*.safetensors" in patterns and not any(p.endswith((".bin", ".py", ".pt", ".pkl")) for p in patterns)
    assert "trust_remote_code" not in asked
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["origin"] == {"name": "hubbed", "source": "hub", "hub_id": "org/model", "revision": "0123abcd",
                                  "resolved_snapshot": "0123abcd"}
    assert len(manifest["files"]["model.safetensors"]["sha256"]) == 64


def _checkpoint_without(tiny_models, tmp_path, dropped_prefixes):
    """A copy of the tiny BERT with the weights named by `dropped_prefixes` taken out of its safetensors."""
    import shutil

    from safetensors.numpy import load_file, save_file

    source = tmp_path / "checkpoint"
    shutil.copytree(tiny_models["bert"], source, ignore=shutil.ignore_patterns("manifest.json"))
    weights = load_file(source / "model.safetensors")
    kept = {name: value for name, value in weights.items() if not name.startswith(dropped_prefixes)}
    assert len(kept) < len(weights)
    save_file(kept, source / "model.safetensors", metadata={"format": "pt"})
    return source


def test_a_checkpoint_missing_a_weight_the_forward_pass_reads_is_stopped_naming_it(tiny_models, tmp_path):
    source = _checkpoint_without(tiny_models, tmp_path, ("encoder.layer.1.output.dense.",))
    spec = ModelSpec(name="holey", source="local", path=str(source))
    with pytest.raises(ModelSourceError, match=r"the checkpoint lacks 2 weight\(s\) the timed forward pass reads "
                                               r"\(encoder.layer.1.output.dense.bias, encoder.layer.1.output.dense.weight\)"):
        prepare_model_dir(spec, tmp_path / "out")


def test_a_checkpoint_missing_only_its_pooler_is_said_once_and_loads(tiny_models, tmp_path, caplog, capsys):
    """The pooler is computed but never read by feature extraction: one line of the pipeline's own at download,
    later loads keep it (and transformers' own load report) in the job's log."""
    import logging

    from inference_bench.models import load_torch_model

    source = _checkpoint_without(tiny_models, tmp_path, ("pooler.",))
    spec = ModelSpec(name="no-pooler", source="local", path=str(source))
    caplog.set_level(logging.INFO)
    out = prepare_model_dir(spec, tmp_path / "out")
    said = [r for r in caplog.records if "weight(s) missing" in r.getMessage()]
    assert len(said) == 1 and getattr(said[0], "terminal", True)  # for the terminal
    assert "2 weight(s) missing, none read by the timed forward pass (pooler.dense.bias, pooler.dense.weight" in (
        said[0].getMessage())
    caplog.clear()
    load_torch_model(out)
    again = [r for r in caplog.records if "weight(s) missing" in r.getMessage()]
    assert len(again) == 1 and again[0].terminal is False  # the job's log only
    assert "LOAD REPORT" not in capsys.readouterr().err  # transformers' table is not printed on its own


def test_a_classifier_missing_its_pooler_is_stopped():
    """A BERT classifier reads its pooler: missing, it is a weight the forward pass reads."""
    from inference_bench.models import check_loaded_weights

    with pytest.raises(ModelSourceError, match="lacks 1 weight"):
        check_loaded_weights("clf", {"missing_keys": {"bert.pooler.dense.weight"}}, classifier=True,
                             base_prefix="bert")
    assert check_loaded_weights("enc", {"missing_keys": set(), "unexpected_keys": {"cls.predictions.bias"}},
                                classifier=False) == "enc: 1 unexpected weight(s) ignored (cls.predictions.bias)"
