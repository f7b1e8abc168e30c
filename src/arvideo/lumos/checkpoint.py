"""Model folders in the released Lumos-1 format: HF `config.json` + safetensors (or .bin) weights.

Reading accepts what the official code writes (reference §6.4): a single `model.safetensors`,
sharded `*.safetensors` with `model.safetensors.index.json`, or `pytorch_model*.bin` (read with
`torch.load(weights_only=True)`, never unpickling code). Writing produces the same layout with the
official key names, so our own models and the released ones are one format. Stored bf16 weights
are upcast to fp32 on load by default.

Key names go through ONE adapter table (official name -> arvideo name; '{}' is the layer index,
None marks official keys that carry nothing we use), read in both directions. The one exception
in shape: the decoder holds the head as two row blocks (`HEAD_PARTS`, text then visual rows, so a
visual-only loss gives the text rows no gradient); `to_native` splits `lm_head.weight` into them
and `to_official` joins them back.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from arvideo.errors import ArvideoError
from arvideo.files import atomic_write
from arvideo.lumos.decoder import DecoderConfig, LumosDecoder
from arvideo.lumos.rope import RoPE
from arvideo.lumos.vocab import Vocab

log = logging.getLogger(__name__)

KEY_MAP: dict[str, str | None] = {
    "model.embed_tokens.weight": "embed.weight",
    "model.layers.{}.input_layernorm.weight": "layers.{}.attn_norm.weight",
    "model.layers.{}.self_attn.q_proj.weight": "layers.{}.attn.q.weight",
    "model.layers.{}.self_attn.k_proj.weight": "layers.{}.attn.k.weight",
    "model.layers.{}.self_attn.v_proj.weight": "layers.{}.attn.v.weight",
    "model.layers.{}.self_attn.o_proj.weight": "layers.{}.attn.o.weight",
    "model.layers.{}.self_attn.q_norm.weight": "layers.{}.attn.q_norm.weight",
    "model.layers.{}.self_attn.q_norm.bias": "layers.{}.attn.q_norm.bias",
    "model.layers.{}.self_attn.k_norm.weight": "layers.{}.attn.k_norm.weight",
    "model.layers.{}.self_attn.k_norm.bias": "layers.{}.attn.k_norm.bias",
    "model.layers.{}.post_attention_layernorm.weight": "layers.{}.mlp_norm.weight",
    "model.layers.{}.mlp.gate_proj.weight": "layers.{}.mlp.gate.weight",
    "model.layers.{}.mlp.up_proj.weight": "layers.{}.mlp.up.weight",
    "model.layers.{}.mlp.down_proj.weight": "layers.{}.mlp.down.weight",
    "model.layers.{}.self_attn.rotary_emb.inv_freq": None,  # older HF saves; recomputed from rope_theta
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "head.weight",  # split into / joined from HEAD_PARTS
}
HEAD, HEAD_PARTS = "head.weight", ("head_text.weight", "head_visual.weight")

CONFIG = "config.json"
SAFETENSORS, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
BIN, BIN_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"

# config.json fields without which the architecture is unknown
_REQUIRED = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
)
# fields whose other values the official Lumos-1 never uses and arvideo does not implement
_SUPPORTED = {
    "hidden_act": "silu",
    "rope_scaling": None,
    "attention_bias": False,
    "mlp_bias": False,
    "tie_word_embeddings": False,
    "model_parallel_size": 1,
}


def _pattern(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(r"\{\}", r"(\d+)") + "$")


_TO_NATIVE = [(_pattern(k), v) for k, v in KEY_MAP.items()]
_TO_OFFICIAL = [(_pattern(v), k) for k, v in KEY_MAP.items() if v is not None]


def _rename(key: str, table: list[tuple[re.Pattern, str | None]], what: str) -> str | None:
    for pattern, target in table:
        m = pattern.match(key)
        if m is None:
            continue
        if target is None or not m.groups():
            return target
        return target.replace("{}", m.group(1))
    raise ArvideoError(f"unknown {what} weight {key!r}; the folder does not hold a Lumos-1 decoder")


def official_name(name: str) -> str:
    """The official (HF) key of an arvideo parameter name (both head parts: `lm_head.weight`)."""
    return _rename(HEAD if name in HEAD_PARTS else name, _TO_OFFICIAL, "arvideo")


def to_native(state: dict[str, torch.Tensor], vocab: Vocab) -> dict[str, torch.Tensor]:
    """Official (HF) key names -> arvideo module names, dropping the keys mapped to None."""
    out = {}
    for key, value in state.items():
        name = _rename(key, _TO_NATIVE, "official")
        if name == HEAD:
            if value.shape[0] != vocab.size:
                raise ArvideoError(
                    f"weight {key!r} has {value.shape[0]} rows, expected {vocab.size} "
                    f"(the {vocab.layout} vocabulary of config.json)"
                )
            text, visual = value.split([vocab.visual_offset, vocab.codebook_size])  # views
            out.update(zip(HEAD_PARTS, (text, visual), strict=True))
        elif name is not None:
            out[name] = value
    return out


def to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """arvideo module names -> official (HF) key names."""
    out = {}
    for key, value in state.items():
        if key == HEAD_PARTS[0]:
            out[official_name(key)] = torch.cat([value, state[HEAD_PARTS[1]]])  # [V, d]
        elif key != HEAD_PARTS[1]:
            out[official_name(key)] = value
    return out


# ---- config --------------------------------------------------------------------------------------


def config_from_hf(d: dict) -> DecoderConfig:
    """DecoderConfig from the fields of a Lumos-1 (or arvideo) config.json."""
    for name in _REQUIRED:
        if name not in d:
            raise ArvideoError(f"config.json lacks the field {name!r}")
    for name, value in _SUPPORTED.items():
        if d.get(name, value) != value:
            raise ArvideoError(
                f"config.json field {name!r} = {d[name]!r} is not supported (expected {value!r})"
            )
    ours = d.get("arvideo", {})
    vocab = Vocab.from_dict(ours["vocab"]) if "vocab" in ours else Vocab.official()
    if d["vocab_size"] != vocab.size:
        raise ArvideoError(
            f"config.json vocab_size {d['vocab_size']} does not match the {vocab.layout} "
            f"vocabulary ({vocab.size} ids)"
        )
    return DecoderConfig(
        hidden_size=d["hidden_size"],
        intermediate_size=d["intermediate_size"],
        num_hidden_layers=d["num_hidden_layers"],
        num_attention_heads=d["num_attention_heads"],
        num_key_value_heads=d["num_key_value_heads"],
        vocab=vocab,
        rms_norm_eps=d.get("rms_norm_eps", 1e-5),
        rope_theta=d.get("rope_theta", 10000.0),
        rope_kind=ours.get("rope_kind", "mm" if d.get("mm_rope", False) else "1d"),
        rope_strides=tuple(ours.get("rope_strides", (4, 8, 8))),
        swin_norm=d.get("swin_norm", False),
        max_position_embeddings=d.get("max_position_embeddings", 4096),
        initializer_range=d.get("initializer_range", 0.02),
    )


def config_to_hf(cfg: DecoderConfig, dtype: torch.dtype) -> dict:
    """config.json content in the official field names (plus an `arvideo` block for our extras)."""
    return {
        "architectures": ["ChameleonXLLMXForConditionalGeneration"],
        "model_type": "chameleon",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "swin_norm": cfg.swin_norm,
        "mm_rope": cfg.rope_kind == "mm",
        "initializer_range": cfg.initializer_range,
        "mask_image_logits": False,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "z_loss_weight": 0.0,
        "bos_token_id": cfg.vocab.bos,
        "pad_token_id": cfg.vocab.pad,
        "use_cache": True,
        "torch_dtype": str(dtype).removeprefix("torch."),
        **_SUPPORTED,
        "arvideo": {
            "vocab": cfg.vocab.to_dict(),
            "rope_kind": cfg.rope_kind,
            "rope_strides": list(cfg.rope_strides),
        },
    }


def read_config(folder: str | Path) -> DecoderConfig:
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise ArvideoError(f"{folder} has no {CONFIG}; point to a Lumos-1 model folder")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArvideoError(f"{path} is not valid JSON ({e})") from None
    return config_from_hf(d)


# ---- weights -------------------------------------------------------------------------------------


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ArvideoError(f"weight file {path} is missing; the model folder is incomplete")
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a foreign file: any parse failure means it is unusable
        raise ArvideoError(
            f"cannot read weight file {path} ({type(e).__name__}: {e}); re-download it"
        ) from None


def read_official_state(folder: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a model folder under their stored (official) names."""
    folder = Path(folder)
    for index_name, single in ((SAFETENSORS_INDEX, SAFETENSORS), (BIN_INDEX, BIN)):
        if (folder / index_name).is_file():
            try:
                weight_map = json.loads((folder / index_name).read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as e:
                raise ArvideoError(f"{folder / index_name} is not a valid weight index ({e})") from None
            state = {}
            for shard in sorted(set(weight_map.values())):
                state.update(_read_file(folder / shard))
            for key, shard in weight_map.items():
                if key not in state:
                    raise ArvideoError(f"weight {key!r} is listed in {index_name} but missing from {shard}")
            return state
        if (folder / single).is_file():
            return _read_file(folder / single)
    raise ArvideoError(
        f"{folder} holds no weights (expected {SAFETENSORS}, {SAFETENSORS_INDEX}, {BIN} or {BIN_INDEX})"
    )


def load_lumos(
    folder: str | Path, dtype: torch.dtype | None = torch.float32, device: torch.device | str = "cpu"
) -> LumosDecoder:
    """A released Lumos-1 folder (or one written by `save_lumos`) as an eval-mode LumosDecoder.

    `dtype=None` keeps the stored dtype (bf16 for the released checkpoints).
    """
    config = read_config(folder)
    state = to_native(read_official_state(folder), config.vocab)
    with torch.device("meta"):
        model = LumosDecoder(config)
    expected = model.state_dict()
    for name, param in expected.items():
        if name not in state:
            raise ArvideoError(f"model folder {folder} lacks the weight {official_name(name)!r}")
        if state[name].shape != param.shape:
            raise ArvideoError(
                f"weight {official_name(name)!r} has shape "
                f"{list(state[name].shape)}, expected {list(param.shape)} from config.json"
            )
    for name in state.keys() - expected.keys():
        raise ArvideoError(
            f"model folder {folder} has the unexpected weight "
            f"{official_name(name)!r} (more layers than config.json?)"
        )
    state = {k: v.to(device=device, dtype=dtype or v.dtype) for k, v in state.items()}
    model.load_state_dict(state, assign=True)
    model.rope = RoPE(config.head_dim, config.rope_theta, config.rope_kind).to(device)  # buffers were on meta
    log.info(
        "loaded %s: %d layers, d=%d, %s vocabulary",
        folder,
        config.num_hidden_layers,
        config.hidden_size,
        config.vocab.layout,
    )
    return model.eval()


def save_lumos(
    model: LumosDecoder,
    folder: str | Path,
    overwrite: bool = False,
    dtype: torch.dtype | None = None,
    max_shard_bytes: int | None = None,
) -> Path:
    """Write config.json + weights in the official layout, atomically.

    One `model.safetensors`, or shards `model-0000i-of-0000n.safetensors` plus
    `model.safetensors.index.json` when the weights exceed `max_shard_bytes`.
    """
    state = {
        k: v.detach().to("cpu", dtype or v.dtype).contiguous()
        for k, v in to_official(model.state_dict()).items()
    }
    dtype = next(iter(state.values())).dtype
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, value in state.items():
        nbytes = value.numel() * value.element_size()
        if max_shard_bytes is not None and shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = value
        size += nbytes
    with atomic_write(folder, overwrite=overwrite, is_dir=True) as tmp:
        (tmp / CONFIG).write_text(json.dumps(config_to_hf(model.config, dtype), indent=2) + "\n")
        if len(shards) == 1:
            save_file(shards[0], tmp / SAFETENSORS, metadata={"format": "pt"})
        else:
            weight_map = {}
            for i, shard in enumerate(shards):
                name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
                save_file(shard, tmp / name, metadata={"format": "pt"})
                weight_map.update(dict.fromkeys(shard, name))
            total = sum(v.numel() * v.element_size() for v in state.values())
            index = {"metadata": {"total_size": total}, "weight_map": weight_map}
            (tmp / SAFETENSORS_INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return Path(folder)
