"""LumosPipeline, `arvideo.load` and `arvideo generate` on a tiny random model folder.

The folder is what a trained built-in looks like: official-layout checkpoint + arvideo.json
naming a (random, tiny) causal FSQ video tokenizer and a small caption BPE.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import arvideo
from arvideo import pipelines
from arvideo.cli import main
from arvideo.errors import ArvideoError
from arvideo.io import Video
from arvideo.lumos.checkpoint import save_lumos
from arvideo.lumos.vocab import Vocab
from arvideo.pipelines import load
from arvideo.pipelines.lumos import FORMAT, LumosPipeline, PipelineConfig
from arvideo.tokenizers import CausalTokenizerConfig, CausalVideoTokenizer
from arvideo.tokenizers.ids import decode_video, encode_video
from arvideo.tokenizers.text import train_bpe
from lumos_util import tiny_decoder

CAPTIONS = ["a small red circle moves to the right", "a large blue square moves up on a black background"]
DEFAULTS = dict(width=32, height=32, frames=9, fps=8, steps=2, cfg=2.0, image_cfg=2.0, history_ratio=0.7)


def tiny_tokenizer(levels: tuple[int, ...]) -> CausalVideoTokenizer:
    """A random causal tokenizer whose decoder output depends on the codes (PyTorch's default init;
    `init_weights` starts the output conv at zero, which would decode every video to flat grey)."""
    torch.manual_seed(0)  # test-only: module init draws from the global generator
    config = CausalTokenizerConfig(patch_size=4, channels=(8, 8), decoder_blocks=1, levels=levels)
    return CausalVideoTokenizer(config).eval()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A compact-layout model folder with arvideo.json, its tokenizers beside it."""
    root = tmp_path_factory.mktemp("models")
    tiny_tokenizer((4, 4)).save(root / "tok")
    text = train_bpe(CAPTIONS * 4, vocab_size=280)
    (root / "text").mkdir()
    text.save(root / "text" / "tokenizer.json")
    model = tiny_decoder(vocab=Vocab.compact(text.vocab_size, 16), initializer_range=0.05)
    save_lumos(model, root / "model")
    config = PipelineConfig(tokenizer="../tok", text_tokenizer="../text/tokenizer.json", prompt="caption",
                            max_prompt_tokens=40, **DEFAULTS)  # fmt: skip
    (root / "model" / "arvideo.json").write_text(json.dumps(config.to_dict(), indent=2))
    return root / "model"


@pytest.fixture(scope="module")
def pipe(model_dir) -> LumosPipeline:
    return load(model_dir)


@pytest.fixture
def first_frame(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "first.png"
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


# ---- loading -------------------------------------------------------------------------------------


def test_load_is_exported_and_missing_builtin_is_explained(tmp_path, monkeypatch):
    assert arvideo.load is load
    monkeypatch.setattr(pipelines, "BUILTIN_DIR", tmp_path)  # an install without built-in models
    with pytest.raises(ArvideoError, match="not in this install"):
        arvideo.load("builtin:shapes")
    with pytest.raises(ArvideoError, match="unknown built-in model"):
        arvideo.load("builtin:nope")


def test_folder_without_arvideo_json_needs_tokenizers(tmp_path):
    save_lumos(tiny_decoder(), tmp_path / "m")
    with pytest.raises(ArvideoError, match="pass tokenizer="):
        load(tmp_path / "m")


def test_mismatched_tokenizer_is_refused(model_dir):
    with pytest.raises(ArvideoError, match="codes"):
        load(model_dir, tokenizer=tiny_tokenizer((4, 4, 2)))


# ---- tasks ---------------------------------------------------------------------------------------


def test_text_to_video_uses_the_model_defaults(pipe):
    video = pipe(CAPTIONS[0], seed=0)
    assert isinstance(video, Video)
    assert video.frames.shape == (9, 32, 32, 3) and video.fps == 8


def test_sampling_defaults_come_from_arvideo_json_and_calls_override_them(pipe):
    settings = dataclasses.replace(pipe.config, temperature=0.5, top_k=3)
    tuned = LumosPipeline(pipe.model, pipe.tokenizer, pipe.text_tokenizer, settings)
    default = tuned.check_inputs(CAPTIONS[0]).config
    assert default.temperature == 0.5 and default.top_k == 3
    given = tuned.check_inputs(CAPTIONS[0], temperature=1.0, top_k=0).config
    assert given.temperature == 1.0 and given.top_k is None  # 0: every code may be drawn
    plain = pipe.check_inputs(CAPTIONS[0]).config  # the fixture's: temperature 1, no top-k
    assert plain.temperature == 1.0 and plain.top_k is None


def test_text_to_image_is_one_frame(pipe):
    steps = []
    video = pipe(CAPTIONS[0], frames=1, callback=steps.append)
    assert video.frames.shape == (1, 32, 32, 3)
    assert [(s.frame, s.step) for s in steps] == [(0, 0), (0, 1)]


def test_same_seed_same_video(pipe):
    a = pipe(CAPTIONS[1], frames=5, seed=3, temperature=1.5)
    b = pipe(CAPTIONS[1], frames=5, seed=3, temperature=1.5)
    c = pipe(CAPTIONS[1], frames=5, seed=4, temperature=1.5)
    assert torch.equal(a.frames, b.frames)
    assert not torch.equal(a.frames, c.frames)


def test_image_to_video_starts_from_the_given_frame(pipe, first_frame):
    steps = []
    video = pipe(CAPTIONS[0], first_frame, frames=9, callback=steps.append)
    assert video.frames.shape == (9, 32, 32, 3)
    assert {s.frame for s in steps} == {1, 2}  # frame 0 is given, not decoded
    # the causal tokenizer decodes frame 0 from latent frame 0 alone: the given image's tokens
    given = Video(torch.from_numpy(np.array(Image.open(first_frame)))[None])
    expected = decode_video(pipe.tokenizer, encode_video(pipe.tokenizer, given)).frames[0]
    assert torch.equal(video.frames[0], expected)


def test_video_continuation(pipe):
    clip = Video(
        torch.randint(0, 255, (5, 48, 40, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    )
    steps = []
    video = pipe(CAPTIONS[1], clip, frames=13, callback=steps.append)  # 2 latent frames given, 2 generated
    assert video.frames.shape == (13, 32, 32, 3)  # resized and centre-cropped to the model size
    assert {s.frame for s in steps} == {2, 3}


def test_stream_yields_the_same_frames_chunk_by_chunk(pipe):
    chunks = list(pipe.stream(CAPTIONS[0], frames=9, seed=5))
    assert [len(c.frames) for c in chunks] == [1, 4, 4]
    whole = pipe(CAPTIONS[0], frames=9, seed=5)
    assert torch.equal(torch.cat([c.frames for c in chunks]), whole.frames)


def test_official_layout_pipeline_writes_the_lumos_prompt():
    text = train_bpe(CAPTIONS * 4, vocab_size=280)
    model = tiny_decoder(vocab=Vocab.official(), initializer_range=0.05)
    pipe = LumosPipeline(
        model, tiny_tokenizer((8, 8, 8, 5, 5, 5)), text, PipelineConfig(**DEFAULTS, prompt="lumos")
    )
    request = pipe.check_inputs(CAPTIONS[0], frames=1)
    assert text.decode(request.text_ids).startswith(
        "Generate a video with a resolution of 32x32, consisting of 1"
    )
    assert request.latent == (1, 4, 4)
    video = pipe(CAPTIONS[0], frames=5, steps=2)
    assert video.frames.shape == (5, 32, 32, 3)
    with pytest.raises(ArvideoError, match="multiple of 32 pixels.*use 32 or 64"):
        pipe.check_inputs(CAPTIONS[0], size=(40, 32))


# ---- input checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(prompt="   "), "prompt is empty"),
        (dict(prompt="a red circle " * 30), "tokens long, the model takes at most 40"),
        (dict(size=(60, 32)), "multiple of 8 pixels.*use 56 or 64"),
        (dict(size=(0, 32)), "positive whole number"),
        (dict(frames=8), "8 frames cannot be made.*use 5 or 9"),
        (dict(frames=0), "frames must be a whole number >= 1"),
        (dict(frames=5, seconds=1.0), "either frames or seconds"),
        (dict(steps=0), "steps must be >= 1"),
        (dict(cfg=-1.0), "cfg must be >= 0"),
        (dict(top_k=-1), "top-k must be a whole number >= 0"),
        (dict(history_ratio=2.0), "history ratio"),
        (dict(fps=0), "fps must be a whole number"),
        (dict(image=torch.zeros(4, 32, 32, 3, dtype=torch.uint8)), "given frames: 4 frames cannot be made"),
        (dict(image=torch.zeros(9, 32, 32, 3, dtype=torch.uint8), frames=9), "nothing to generate"),
    ],
)
def test_check_inputs_refuses_bad_arguments(pipe, options, message):
    options = {"prompt": CAPTIONS[0], **options}
    with pytest.raises(ArvideoError, match=message):
        pipe.check_inputs(options.pop("prompt"), options.pop("image", None), **options)


def test_seconds_round_up_to_whole_latent_frames(pipe):
    assert pipe.check_inputs(CAPTIONS[0], seconds=1.0).frames == 9  # 8 frames at 8 fps -> 1 + 4*2
    assert pipe.check_inputs(CAPTIONS[0], seconds=0.1).frames == 1


def test_unreadable_image_is_refused(pipe, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ArvideoError, match="not a readable image"):
        pipe.check_inputs(CAPTIONS[0], bad)


# ---- CLI -----------------------------------------------------------------------------------------


def test_cli_generates_video_and_gif(model_dir, tmp_path, capsys):
    out = tmp_path / "a.mp4"
    args = ["-q", "generate", CAPTIONS[0], "--model", str(model_dir), "--frames", "5", "--steps", "2",
            "--out", str(out), "--gif"]  # fmt: skip
    assert main(args) == 0
    assert out.is_file() and out.with_suffix(".gif").is_file()
    assert main(args) == 2  # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_cli_image_to_video(model_dir, tmp_path, first_frame):
    out = tmp_path / "i2v.gif"
    args = ["-q", "generate", CAPTIONS[0], "--model", str(model_dir), "--image", str(first_frame),
            "--frames", "5", "--steps", "1", "--cfg", "1", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert out.is_file()


def test_cli_next_token_decoding_is_the_pipelines(model_dir, pipe, tmp_path):
    out = tmp_path / "raster.png"
    args = ["-q", "generate", CAPTIONS[0], "--model", str(model_dir), "--frames", "1", "--seed", "2",
            "--decoding", "next_token", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    expected = pipe(CAPTIONS[0], frames=1, seed=2, decoding="next_token").frames[0]
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), expected.numpy())
    assert not torch.equal(pipe(CAPTIONS[0], frames=1, seed=2).frames[0], expected)  # parallel differs


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frames", "8"], "use 5 or 9"),
        (["--frames", "abc"], "`--frames` must be a whole number"),
        (["--size", "30x32"], "use 24 or 32"),
        (["--size", "big"], "--size must look like"),
        (["--steps", "0"], "steps must be >= 1"),
        (["--cfg", "-2"], "cfg must be >= 0"),
        (["--image", "missing.png"], "does not exist"),
        (["--out", "x.avi"], "cannot write 'x.avi'"),
        (["--model", "builtin:shapes"], "not in this install"),
    ],
)
def test_cli_bad_arguments_fail_on_one_line_and_write_nothing(
    model_dir, tmp_path, capsys, monkeypatch, extra, message
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipelines, "BUILTIN_DIR", tmp_path / "builtin")  # an install without built-in models
    code = main(
        ["-q", "generate", CAPTIONS[0], "--model", str(model_dir), "--steps", "1", "--out", "o.mp4", *extra]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("arvideo: error:")
    assert re.search(message, err)
    assert list(tmp_path.iterdir()) == []


def test_pipeline_config_rejects_unknown_keys(tmp_path):
    (tmp_path / "arvideo.json").write_text(json.dumps({"format": FORMAT, "stepz": 3}))
    with pytest.raises(ArvideoError, match="unknown key 'stepz'"):
        PipelineConfig.read(tmp_path)
