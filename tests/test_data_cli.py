"""`arvideo data shapes` and the captioned folder format it writes (read back by `read_captions`)."""

import csv
import json

import pytest
import torch

from arvideo.cli import main
from arvideo.data import folder
from arvideo.data.folder import read_captions
from arvideo.data.shapes import ClipSpec, parse_prompt, render
from arvideo.errors import ArvideoError
from arvideo.io import read_video


def _meta(out):
    return [json.loads(line) for line in (out / "meta.jsonl").read_text().splitlines()]


def test_writes_clips_captions_meta_and_preview(tmp_path):
    out = tmp_path / "set"
    assert main(["data", "shapes", "--out", str(out), "-n", "6", "--preview", str(out / "preview.gif")]) == 0
    items = read_captions(out)
    assert [p.name for p, _ in items] == [f"{i:06d}.mp4" for i in range(6)]
    meta = _meta(out)
    assert [m["path"] for m in meta] == [f"clips/{i:06d}.mp4" for i in range(6)]
    assert [m["caption"] for m in meta] == [c for _, c in items]
    for (path, caption), m in zip(items, meta, strict=True):
        spec = ClipSpec.from_dict(m["spec"])
        assert len(parse_prompt(caption).objects) == len(spec.objects)
        assert len(m["truth"]) == 17 and len(m["truth"][0]) == len(spec.objects)
        # The file holds what the stored spec renders (within the mp4 bound of test_io).
        video = read_video(path)
        assert video.fps == 8.0
        expected, _ = render(spec)
        assert (video.frames.int() - expected.int()).abs().float().mean() < 2.0
    preview = read_video(out / "preview.gif").frames
    assert preview.shape == (17, 2 * 66 - 2, 3 * 66 - 2, 3)  # 6 clips in 2 rows of 3, 2 px gaps
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no temporary left beside it


def test_images_are_png_and_exact(tmp_path):
    out = tmp_path / "img"
    assert main(["data", "shapes", "--out", str(out), "-n", "5", "--images", "--seed", "3"]) == 0
    for m in _meta(out):
        assert m["path"].endswith(".png")
        expected, _ = render(ClipSpec.from_dict(m["spec"]))
        assert torch.equal(read_video(out / m["path"]).frames, expected)
        assert all(o.position for o in parse_prompt(m["caption"]).objects)


def test_same_seed_same_dataset(tmp_path):
    for name in ("a", "b"):
        assert main(["-q", "data", "shapes", "--out", str(tmp_path / name), "-n", "12", "--seed", "5"]) == 0
    assert (tmp_path / "a" / "meta.jsonl").read_text() == (tmp_path / "b" / "meta.jsonl").read_text()
    for i in range(12):
        clip = f"clips/{i:06d}.mp4"
        assert (tmp_path / "a" / clip).read_bytes() == (tmp_path / "b" / clip).read_bytes()


def test_refuses_a_non_empty_folder_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "set"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["data", "shapes", "--out", str(out), "-n", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err and "--overwrite" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert main(["data", "shapes", "--out", str(out), "-n", "2", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["captions.csv", "clips", "meta.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_fills_an_existing_empty_folder(tmp_path):
    out = tmp_path / "set"
    out.mkdir()
    assert main(["data", "shapes", "--out", str(out), "-n", "2"]) == 0
    assert len(read_captions(out)) == 2


@pytest.mark.parametrize(
    "args, match",
    [
        (["-n", "0"], "-n must be >= 1"),
        (["-n", "2", "--size", "63"], "even"),
        (["-n", "2", "--size", "16"], ">= 32"),
        (["-n", "2", "--frames", "1"], "at least 2 frames"),
        (["-n", "2", "--images", "--frames", "5"], "1 frame"),
        (["-n", "2", "--seed", "-1"], "seed"),
        (["-n", "2", "--preview", "p.mp4"], ".gif"),
        (["-n", "2", "--min-objects", "2", "--max-objects", "1"], "min_objects"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, args, match):
    assert main(["data", "shapes", "--out", str(tmp_path / "set"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("arvideo: error:") and err.count("\n") == 1 and match in err
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_write(path, frames, fps):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        path.write_bytes(b"x")

    monkeypatch.setattr(folder, "write_video", failing_write)
    assert main(["data", "shapes", "--out", str(tmp_path / "set"), "-n", "5"]) == 130
    assert list(tmp_path.iterdir()) == []


def test_preview_outside_the_folder_is_checked_first(tmp_path, capsys):
    (tmp_path / "p.gif").write_bytes(b"old")
    assert (
        main(
            [
                "data",
                "shapes",
                "--out",
                str(tmp_path / "set"),
                "-n",
                "2",
                "--preview",
                str(tmp_path / "p.gif"),
            ]
        )
        == 2
    )
    assert "p.gif already exists" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.gif"]


# ---- read_captions: the reader later stages use on any captioned folder


def _write_table(folder_, rows, header=("path", "caption")):
    folder_.mkdir(exist_ok=True)
    with open(folder_ / "captions.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def test_read_captions_keeps_commas_and_resolves_paths(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    _write_table(tmp_path, [("a.mp4", "on a black background, a red circle moves up")])
    assert read_captions(tmp_path) == [(tmp_path / "a.mp4", "on a black background, a red circle moves up")]


@pytest.mark.parametrize(
    "rows, header, match",
    [
        ([("a.mp4", "a red circle")], ("file", "text"), "header"),
        ([("a.mp4", "  ")], ("path", "caption"), "empty caption"),
        ([("a.mp4",)], ("path", "caption"), "empty caption"),
        ([("b.mp4", "a red circle")], ("path", "caption"), "'b.mp4' does not exist"),
        ([], ("path", "caption"), "no items"),
    ],
)
def test_read_captions_errors(tmp_path, rows, header, match):
    (tmp_path / "a.mp4").write_bytes(b"x")
    _write_table(tmp_path, rows, header)
    with pytest.raises(ArvideoError, match=match):
        read_captions(tmp_path)


def test_read_captions_needs_the_folder_and_the_table(tmp_path):
    with pytest.raises(ArvideoError, match="does not exist"):
        read_captions(tmp_path / "nope")
    with pytest.raises(ArvideoError, match="no captions.csv"):
        read_captions(tmp_path)


def test_prompt_file_renders_exactly_what_each_line_asks(tmp_path):
    prompts = tmp_path / "in" / "prompts.txt"
    prompts.parent.mkdir()
    lines = [
        "a small red circle moves to the right on a black background",
        "# a comment, skipped",
        "",
        "a large blue square slides up and a small green star stays still on a white background",
    ]
    prompts.write_text("\n".join(lines) + "\n")
    out = tmp_path / "set"
    assert main(["data", "shapes", "--out", str(out), "--prompts", str(prompts)]) == 0
    meta = _meta(out)
    assert [m["caption"] for m in meta] == [lines[0], lines[3]]
    for m in meta:
        asked = parse_prompt(m["caption"])
        spec = ClipSpec.from_dict(m["spec"])
        assert spec.background == asked.background
        got = [(o.shape, o.colour, o.motion) for o in spec.objects]
        assert got == [(o.shape, o.colour, o.motion) for o in asked.objects]
        assert [o.size for o in spec.objects] == [o.size for o in asked.objects]


@pytest.mark.parametrize(
    "text, match",
    [
        ("a purple hexagon moves left", "prompts.txt:2: unknown word(s) 'purple', 'hexagon'"),
        ("a red circle and a red square", "prompts.txt:2: prompt 'a red circle and a red square' gives two"),
        ("a red circle in the top left", "prompts.txt:2: prompt 'a red circle in the top left' names a grid"),
    ],
)
def test_prompt_file_errors_name_the_line_and_write_nothing(tmp_path, capsys, text, match):
    prompts = tmp_path / "in" / "prompts.txt"
    prompts.parent.mkdir()
    prompts.write_text(f"a blue star\n{text}\n")
    assert main(["data", "shapes", "--out", str(tmp_path / "set"), "--prompts", str(prompts)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_prompt_file_must_exist_and_exclude_n(tmp_path, capsys):
    assert (
        main(["data", "shapes", "--out", str(tmp_path / "set"), "--prompts", str(tmp_path / "no.txt")]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "shapes", "--out", str(tmp_path / "set"), "--prompts", "x", "-n", "3"])
    assert list(tmp_path.iterdir()) == []
