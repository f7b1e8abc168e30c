"""Model folders in the official format: round trips, shards, .bin, and clear errors."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from arvideo.errors import ArvideoError
from arvideo.lumos.checkpoint import (
    KEY_MAP,
    load_lumos,
    read_official_state,
    save_lumos,
    to_native,
    to_official,
)
from lumos_util import COMPACT, fixture_dir, tiny_decoder


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def model():
    return tiny_decoder(swin_norm=True, rope_kind="3d", rope_strides=(2, 4, 4))


def test_save_load_round_trip(tmp_path, model):
    folder = save_lumos(model, tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "chameleon" and config["vocab_size"] == COMPACT.size
    assert set(load_file(folder / "model.safetensors")) == set(to_official(model.state_dict()))
    loaded = load_lumos(folder)
    assert loaded.config == model.config and _same_weights(loaded, model)
    ids = torch.tensor([[COMPACT.bos, 3, COMPACT.sep, COMPACT.video_start]])
    torch.testing.assert_close(loaded(ids), model(ids))
    with pytest.raises(ArvideoError, match="already exists"):
        save_lumos(model, folder)


def test_sharded_and_bf16_round_trip(tmp_path, model):
    folder = save_lumos(model, tmp_path / "m", dtype=torch.bfloat16, max_shard_bytes=20_000)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert json.loads((folder / "config.json").read_text())["torch_dtype"] == "bfloat16"
    loaded = load_lumos(folder)  # bf16 on disk, upcast to fp32
    assert loaded.head_visual.weight.dtype == torch.float32
    for name, param in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], param.bfloat16().float())
    assert load_lumos(folder, dtype=None).head_visual.weight.dtype == torch.bfloat16


@pytest.mark.parametrize("sharded", [False, True])
def test_bin_folders(tmp_path, model, sharded):
    folder = save_lumos(model, tmp_path / "m")
    state = to_official(model.state_dict())
    (folder / "model.safetensors").unlink()
    if sharded:
        keys = sorted(state)
        halves = {
            "pytorch_model-00001-of-00002.bin": keys[::2],
            "pytorch_model-00002-of-00002.bin": keys[1::2],
        }
        for name, part in halves.items():
            torch.save({k: state[k] for k in part}, folder / name)
        weight_map = {k: name for name, part in halves.items() for k in part}
        (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    else:
        torch.save(state, folder / "pytorch_model.bin")
    assert _same_weights(load_lumos(folder), model)


def test_adapter_table_runs_both_ways(model):
    state = model.state_dict()
    official = to_official(state)
    assert "model.layers.1.self_attn.q_norm.weight" in official and "lm_head.weight" in official
    assert official["model.layers.0.self_attn.q_norm.weight"].shape == (1, model.config.head_dim)
    native = to_native(official, COMPACT)
    assert native.keys() == state.keys() and all(torch.equal(native[k], state[k]) for k in state)
    assert torch.equal(official["lm_head.weight"], model.head_weight)  # the two head parts, joined
    assert to_native({"model.layers.3.self_attn.rotary_emb.inv_freq": torch.zeros(1)}, COMPACT) == {}
    assert sum(v is None for v in KEY_MAP.values()) == 1


def _broken(tmp_path, model, edit):
    folder = save_lumos(model, tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    edit(folder, state)
    if state:
        save_file(state, folder / "model.safetensors")
    return folder


def _drop_config_field(folder, state):
    config = json.loads((folder / "config.json").read_text())
    del config["num_key_value_heads"]
    (folder / "config.json").write_text(json.dumps(config))


ERRORS = {
    "missing key": (
        lambda f, s: s.pop("model.layers.1.mlp.up_proj.weight"),
        "lacks the weight 'model.layers.1.mlp.up_proj.weight'",
    ),
    "unknown key": (
        lambda f, s: s.update({"model.vision_tower.weight": torch.zeros(2)}),
        "unknown official weight 'model.vision_tower.weight'",
    ),
    "extra layer": (
        lambda f, s: s.update({"model.layers.7.mlp.up_proj.weight": torch.zeros(2)}),
        "unexpected weight 'model.layers.7.mlp.up_proj.weight'",
    ),
    "wrong shape": (
        lambda f, s: s.update({"model.norm.weight": torch.zeros(3)}),
        r"'model.norm.weight' has shape \[3\], expected \[64\]",
    ),
    "config field": (_drop_config_field, "lacks the field 'num_key_value_heads'"),
    "corrupt file": (
        lambda f, s: (s.clear(), (f / "model.safetensors").write_bytes(b"\x00garbage")),
        "cannot read weight file .*model.safetensors",
    ),
    "no weights": (lambda f, s: (s.clear(), (f / "model.safetensors").unlink()), "holds no weights"),
    "no config": (lambda f, s: (f / "config.json").unlink(), "has no config.json"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_name_the_problem(tmp_path, model, case):
    edit, message = ERRORS[case]
    with pytest.raises(ArvideoError, match=message):
        load_lumos(_broken(tmp_path, model, edit))


def test_incomplete_sharded_folder_names_the_shard(tmp_path, model):
    folder = save_lumos(model, tmp_path / "m", max_shard_bytes=20_000)
    (folder / f"model-00002-of-{len(list(folder.glob('model-*'))):05d}.safetensors").unlink()
    with pytest.raises(ArvideoError, match="model-00002-of-.*is missing"):
        read_official_state(folder)


def test_unsupported_config_values(tmp_path, model):
    folder = save_lumos(model, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**config, "rope_scaling": {"type": "linear", "factor": 2}})
    )
    with pytest.raises(ArvideoError, match="'rope_scaling'"):
        load_lumos(folder)


@pytest.mark.skipif(fixture_dir() is None, reason="official fixture lumos1_official_tiny not found")
def test_official_fixture_config_and_resave(tmp_path):
    official = load_lumos(fixture_dir())
    c = official.config
    assert (c.vocab.layout, c.hidden_size, c.num_key_value_heads, c.rope_kind, c.swin_norm) == (
        "official",
        64,
        1,
        "mm",
        False,
    )
    assert c.vocab_size == 129536 and c.head_dim == 32
    resaved = load_lumos(save_lumos(official, tmp_path / "again", dtype=torch.bfloat16))
    assert _same_weights(resaved, official)  # bf16 values survive the round trip exactly
