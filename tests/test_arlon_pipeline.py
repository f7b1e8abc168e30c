"""ArlonPipeline and `arvideo long`: segment layout, AR windows, overlap consistency, seeds, CLI errors."""

import pytest
import torch

import arvideo
from arlon_tiny import tiny_pipeline
from arvideo import pipelines
from arvideo.arlon.build import FLOOR_METRICS, export, subset_report
from arvideo.cli import main as cli
from arvideo.errors import ArvideoError
from arvideo.eval.floors import FLOORS_FILE, read_floors
from arvideo.io import read_video
from arvideo.lumos.checkpoint import save_lumos
from arvideo.pipelines import arlon as arlon_pipeline
from arvideo.pipelines.arlon import ArlonPipeline, Layout

PROMPTS = ["a small red circle moves to the right", "a large blue star stays still"]


@pytest.fixture(scope="module")
def pipe() -> ArlonPipeline:
    return tiny_pipeline()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, pipe):
    return pipe.save_pretrained(tmp_path_factory.mktemp("arlon") / "model", dtype=torch.float32)


def test_layout_of_segments():
    four = Layout(segments=4, segment_latents=5, reference=1, temporal_compression=4)
    assert (four.latents, four.frames, four.reference_pixels) == (17, 65, 1)  # 17 + 3 x 16 frames
    assert [four.window(k) for k in range(4)] == [slice(0, 5), slice(4, 9), slice(8, 13), slice(12, 17)]
    assert [four.opened_by(j) for j in range(17)] == [0] * 5 + [1] * 4 + [2] * 4 + [3] * 4
    assert [four.first_frame_of(k) for k in range(5)] == [0, 5, 9, 13, 17]
    two = Layout(segments=3, segment_latents=5, reference=2, temporal_compression=4)
    assert (two.stride, two.latents, two.frames, two.reference_pixels) == (3, 11, 41, 5)


def test_stream_equals_call_and_the_seed_fixes_the_video(pipe):
    video = pipe(PROMPTS, segments=3, seed=4)
    parts = list(pipe.stream(PROMPTS, segments=3, seed=4))
    assert [len(p.frames) for p in parts] == [17, 16, 16] and video.frames.shape == (49, 64, 64, 3)
    assert torch.equal(torch.cat([p.frames for p in parts]), video.frames)
    assert torch.equal(pipe(PROMPTS, segments=3, seed=4).frames, video.frames)
    assert not torch.equal(pipe(PROMPTS, segments=3, seed=5).frames, video.frames)
    generator = torch.Generator().manual_seed(4)
    assert torch.equal(pipe(PROMPTS, segments=3, generator=generator).frames, video.frames)


def test_segment_overlap_frames_are_consistent(pipe):
    """Segment k+1 starts from the last frame of segment k exactly as it is in the output."""
    segments = list(pipe.segments(PROMPTS, segments=4, seed=0))
    video = torch.cat([s.frames for s in segments])
    tok, r = pipe.tokenizer, pipe.config.reference_frames
    assert segments[0].reference is None
    done = 0
    for k, seg in enumerate(segments):
        if k:
            last = video[done - 1 : done].permute(3, 0, 1, 2)[None]  # the output's last frame so far
            assert torch.equal(seg.reference, tok.encode_latent(last))
            assert torch.equal(seg.latent[:, :, :r], seg.reference)  # kept exactly through the Euler steps
            # its first decoded frame repeats that frame (through the VAE): only the new ones are kept
            assert len(seg.frames) == 16
        done += len(seg.frames)
        assert seg.coarse is not None and seg.coarse.shape == seg.latent.shape
    assert [s.prompt for s in segments] == [PROMPTS[0]] * 2 + [PROMPTS[1]] * 2  # progressive prompts


def test_ar_codes_cover_the_whole_video_with_a_sliding_window(pipe, monkeypatch):
    calls = []
    real = arlon_pipeline.sampler.stream

    def spy(model, text_ids, size, duration, fps, *, given=None, **kw):
        calls.append((list(text_ids), size[0], 0 if given is None else len(given)))
        return real(model, text_ids, size, duration, fps, given=given, **kw)

    monkeypatch.setattr(arlon_pipeline.sampler, "stream", spy)
    prompts = ["a red circle moves up", "a red circle moves down", "a blue circle stays still", "a gray star"]
    request = pipe.check_inputs(prompts, segments=4)
    codes = pipe._ar_codes(request, torch.Generator().manual_seed(0), None)
    assert codes.shape == (17, 4, 4)
    ids = [pipe.text_tokenizer.encode(p) for p in prompts]
    # the first window: 5 frames of segment 1; then one new frame per window, 4 frames of context,
    # each written with the prompt of the segment that opens it
    assert calls[0] == (ids[0], 5, 0) and len(calls) == 1 + 12
    assert [c[1:] for c in calls[1:]] == [(5, 4)] * 12
    assert [c[0] for c in calls[1:]] == [ids[1]] * 4 + [ids[2]] * 4 + [ids[3]] * 4


def test_dit_alone_skips_the_ar_stage(pipe, monkeypatch):
    def no_ar(*args, **kwargs):
        raise AssertionError("the AR model must not run")

    monkeypatch.setattr(arlon_pipeline.sampler, "stream", no_ar)
    segments = list(pipe.segments(PROMPTS, segments=2, seed=0, use_ar=False))
    assert all(s.coarse is None for s in segments) and sum(len(s.frames) for s in segments) == 33


def test_saved_folder_loads_as_the_same_pipeline(pipe, folder, tmp_path):
    loaded = arvideo.load(folder)
    assert isinstance(loaded, ArlonPipeline)
    assert torch.equal(loaded(PROMPTS, segments=2, seed=1).frames, pipe(PROMPTS, segments=2, seed=1).frames)
    half = pipe.save_pretrained(tmp_path / "half")  # fp16 weights: the built-in's storage
    size = lambda f: sum(p.stat().st_size for p in f.rglob("*.safetensors"))  # noqa: E731
    assert size(half) < 0.6 * size(folder)
    assert arvideo.load(half)(PROMPTS[0], seed=0).frames.shape == (17, 64, 64, 3)


@pytest.mark.parametrize(
    "prompts, options, message",
    [
        ([""], {}, "every prompt must be a non-empty text"),
        (PROMPTS, {"segments": 1}, r"segments must be a whole number >= the number of prompts \(2\)"),
        (PROMPTS[:1], {"steps": 0}, "steps must be a whole number >= 1"),
        (PROMPTS[:1], {"ar_steps": 1.5}, "ar_steps must be a whole number >= 1"),
        (PROMPTS[:1], {"cfg": -1.0}, "cfg must be a number >= 0"),
        (PROMPTS[:1], {"seed": "x"}, "seed must be an integer"),
        (PROMPTS[:1], {"decoding": "beam"}, "decoding must be 'parallel' or 'next_token'"),
        (["circle " * 70], {}, "tokens long, the model takes at most 64"),
    ],
)
def test_check_inputs_refuses_bad_arguments(pipe, prompts, options, message):
    with pytest.raises(ArvideoError, match=message):
        pipe.check_inputs(prompts, **options)


def test_use_ar_needs_an_ar_model():
    pipe = tiny_pipeline()
    pipe.ar = None
    with pytest.raises(ArvideoError, match="has no AR stage"):
        pipe.check_inputs(PROMPTS[0])
    assert pipe(PROMPTS[0], use_ar=False, seed=0).frames.shape[0] == 17


def test_cli_long_writes_the_video(folder, tmp_path, capsys):
    out = tmp_path / "long.mp4"
    argv = [
        "-q",
        "long",
        *PROMPTS,
        "--segments",
        "3",
        "--model",
        str(folder),
        "--out",
        str(out),
        "--seed",
        "2",
    ]
    assert cli(argv) == 0
    assert read_video(out).frames.shape == (49, 64, 64, 3)
    assert cli(argv[:-2] + ["--seed", "3", "--overwrite"]) == 0  # --overwrite replaces it


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--segments", "1"], "segments must be a whole number >= the number of prompts"),
        (["--segments", "two"], "`--segments` must be a whole number"),
        (["--steps", "0"], "steps must be a whole number >= 1"),
        (["--cfg", "x"], "`--cfg` must be a number"),
        (["--decoding", "beam"], "decoding must be 'parallel' or 'next_token'"),
        (["--out", "long.png"], "use a .mp4 or .gif file name"),
        (["--model", "does/not/exist"], "neither builtin:NAME nor an existing folder"),
    ],
)
def test_cli_long_bad_arguments_are_one_line_errors_and_write_nothing(folder, tmp_path, capsys, monkeypatch,
                                                                      extra, message):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    argv = ["-q", "long", *PROMPTS, "--model", str(folder), "--out", "long.mp4", *extra]
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("arvideo: error:") and "\n" not in err and message in err
    assert list(tmp_path.iterdir()) == []


def test_missing_builtin_says_how_to_build_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipelines, "BUILTIN_DIR", tmp_path / "builtin")  # an install without built-in models
    with pytest.raises(ArvideoError, match="not in this install .* `scripts/build_builtin_arlon.sh`"):
        arvideo.load("builtin:arlon-shapes")
    monkeypatch.chdir(tmp_path)
    assert cli(["-q", "long", PROMPTS[0], "--model", "builtin:arlon-shapes", "--out", "long.mp4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "build it with `scripts/build_builtin_arlon.sh`" in err and "\n" not in err
    assert not (tmp_path / "long.mp4").exists()


def test_cli_long_never_replaces_a_file_without_overwrite(folder, tmp_path, capsys):
    out = tmp_path / "long.mp4"
    out.write_bytes(b"keep")
    assert cli(["-q", "long", PROMPTS[0], "--model", str(folder), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"keep"


def test_next_token_decoding_is_a_switch_of_the_ar_stage(pipe):
    request = pipe.check_inputs(PROMPTS[0], decoding="next_token")
    assert request.ar_config.decoding == "next_token" and request.ar_config.kv_cache
    parallel = pipe(PROMPTS[0], seed=0, ar_steps=1)
    next_token = pipe(PROMPTS[0], seed=0, decoding="next_token")
    assert next_token.frames.shape == parallel.frames.shape == (17, 64, 64, 3)


def test_export_writes_the_folder_with_the_floors_of_its_own_subset_run(pipe, tmp_path):
    parts = {"vae": pipe.tokenizer.vae, "fine_vq": pipe.tokenizer.fine_vq, "dit": pipe.dit}
    for name, model in parts.items():
        model.save_pretrained(tmp_path / name)
    save_lumos(pipe.ar, tmp_path / "ar")
    out, folders = tmp_path / "arlon", [str(tmp_path / name) for name in ("vae", "fine_vq", "ar", "dit")]
    export(str(out), *folders, overwrite=False)
    # The floors are the exported (fp16) pipeline's own subset scores rounded down: it passes them
    # with no margin, and each is within 0.1 of its score (or at the 0.9 cap).
    floors, _ = read_floors(out / FLOORS_FILE)
    assert {task: tuple(metrics) for task, metrics in floors.items()} == FLOOR_METRICS
    report = subset_report(arvideo.load(str(out)))
    assert all(
        floor <= min(0.9, report["tasks"]["t2v"]["metrics"][metric]["score"]) < floor + 0.1 + 1e-9
        for metric, floor in floors["t2v"].items()
    )
    with pytest.raises(ArvideoError, match="exists"):  # never replaced unless asked
        export(str(out), *folders, overwrite=False)
