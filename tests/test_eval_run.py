"""`evaluate_pipeline` and `arvideo eval run`: ShapesBench against a model in one call.

The model is test_pipeline.py's tiny random folder, allowed the suite's longest prompts (its
small BPE spells them in up to 98 tokens); its defaults are 2 decoding steps and CFG 2.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import pytest
import torch

from arvideo.cli import main
from arvideo.errors import ArvideoError
from arvideo.eval import Suite, evaluate, evaluate_pipeline, first_frame, format_table, load_suite
from arvideo.pipelines.lumos import LumosPipeline, PipelineConfig
from test_pipeline import model_dir  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def bench_dir(model_dir):  # noqa: F811 (the fixture imported above)
    folder = model_dir.with_name("bench")  # beside the tokenizers the folder names
    shutil.copytree(model_dir, folder)
    config = dataclasses.replace(PipelineConfig.read(folder), max_prompt_tokens=128)
    (folder / "arvideo.json").write_text(json.dumps(config.to_dict()))
    return folder


class RecordingPipeline(LumosPipeline):
    """The tiny pipeline, remembering the inputs of every generation."""

    def __call__(self, prompt, image=None, **options):
        self.calls.append((prompt, image, options))
        return super().__call__(prompt, image, **options)


@pytest.fixture
def pipe(bench_dir) -> RecordingPipeline:
    loaded = LumosPipeline.from_folder(bench_dir)
    recording = RecordingPipeline(loaded.model, loaded.tokenizer, loaded.text_tokenizer, loaded.config)
    recording.calls = []
    return recording


# the report's record of the sampling options a run leaves unset
UNSET_SAMPLING = {"temperature": None, "top_k": None, "history_ratio": None, "decoding": "parallel"}


def mini_suite() -> Suite:
    """One case of each task, from the v1 subset."""
    first: dict = {}
    for case in load_suite("v1").select(subset=True):
        first.setdefault(case.task, case)
    return Suite("v1", tuple(first.values()), tuple(c.id for c in first.values()))


def test_every_selected_case_is_generated_once_as_its_task_asks(pipe):
    report = evaluate_pipeline(pipe, "v1", subset=True, tasks=["i2v", "t2i"], seed=3)
    cases = [c for c in load_suite("v1").select(subset=True) if c.task != "t2v"]
    assert [e["id"] for e in report["cases"]] == [c.id for c in cases]  # 12 t2i + 8 i2v, in suite order
    assert list(report["tasks"]) == ["t2i", "i2v"] and report["subset"] and report["media_dir"] is None
    assert report["generation"] == {"seed": 3, "steps": None, "cfg": None, **UNSET_SAMPLING}
    for case, entry, (prompt, image, options) in zip(cases, report["cases"], pipe.calls, strict=True):
        assert prompt == case.prompt and options["seed"] == 3 and options["size"] == (64, 64)
        if case.task == "t2i":
            assert image is None and options["frames"] == 1 and entry["frames"] == 1
        else:  # the case's frame count, from its given first frame
            assert torch.equal(image, first_frame(case)) and entry["frames"] == options["frames"] == 17
            assert set(entry["first_frame"]) == {"psnr", "iou", "background_distance"}


def test_written_media_score_the_same_when_evaluated_from_the_folder(pipe, tmp_path):
    suite, out = mini_suite(), tmp_path / "media"
    report = evaluate_pipeline(pipe, suite, steps=1, cfg=1.0, out_dir=out)
    files = ["t2i-000.png", "t2v-000.mp4", "i2v-000.mp4"]  # images as PNG, videos as mp4
    assert [e["file"] for e in report["cases"]] == files
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    assert report.pop("generation") == {"seed": 0, "steps": 1, "cfg": 1.0, **UNSET_SAMPLING}
    assert evaluate(out, suite) == report  # `arvideo eval shapesbench DIR` reads the same scores

    with pytest.raises(ArvideoError, match="already exists; pass --overwrite"):
        evaluate_pipeline(pipe, suite, out_dir=out)
    assert pipe.calls[3:] == []  # refused before generating anything
    evaluate_pipeline(pipe, suite, steps=1, out_dir=out, overwrite=True)
    assert len(pipe.calls) == 6


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(tasks=["t2v", "v2v"]), "unknown ShapesBench task 'v2v'; tasks: t2i, t2v, i2v"),
        (dict(tasks=[]), "no ShapesBench task selected"),
        (dict(tasks="t2i,t2v"), "unknown ShapesBench task 't2i,t2v'"),  # one name, or a list of them
        (dict(steps=0), "steps must be >= 1"),
        (dict(seed=1.5), "seed must be an integer"),
    ],
)
def test_bad_settings_fail_before_anything_is_generated(pipe, tmp_path, options, message):
    with pytest.raises(ArvideoError, match=message):
        evaluate_pipeline(pipe, mini_suite(), out_dir=tmp_path / "media", **options)
    assert pipe.calls == [] and list(tmp_path.iterdir()) == []


def test_only_lumos_pipelines_are_run():
    with pytest.raises(ArvideoError, match="ShapesBench runs Lumos-1 models.*got a str"):
        evaluate_pipeline("builtin:shapes", mini_suite())


def test_cli_prints_the_table_and_writes_report_and_media(bench_dir, tmp_path, capsys):
    out, path = tmp_path / "media", tmp_path / "run.json"
    args = ["-q", "eval", "run", "--model", str(bench_dir), "--subset", "--tasks", "t2i", "--steps", "1",
            "--cfg", "1", "--seed", "4", "--temperature", "0.5", "--top-k", "8", "--history-ratio", "0",
            "--decoding", "next_token", "--out", str(out), "--report", str(path)]  # fmt: skip
    assert main(args) == 0
    report = json.loads(path.read_text())
    sampling = {
        "seed": 4,
        "steps": 1,
        "cfg": 1.0,
        "temperature": 0.5,
        "top_k": 8,
        "history_ratio": 0.0,
        "decoding": "next_token",
    }
    assert report["model"] == str(bench_dir) and report["generation"] == sampling
    assert len(report["cases"]) == len(list(out.glob("t2i-*.png"))) == 12
    assert capsys.readouterr().out.strip() == format_table(report)
    assert main(args) == 2  # refuses to overwrite
    assert "already exists; pass --overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tasks", "t2i,t3v"], "unknown ShapesBench task 't3v'"),
        (["--model", "builtin:nope"], "unknown built-in model 'builtin:nope'"),
        (["--model", "no_such_folder"], "neither builtin:NAME nor an existing folder"),
        (["--steps", "two"], "`--steps` must be a whole number"),
        (["--steps", "0"], "steps must be >= 1"),
        (["--history-ratio", "1.5"], r"history ratio must be in \[0, 1\], got 1.5"),
        (["--suite", "v0"], "unknown ShapesBench suite 'v0'"),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(bench_dir, tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    args = ["-q", "eval", "run", "--model", str(bench_dir), "--out", "media", "--report", "r.json", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("arvideo: error:")
    assert re.search(message, err)
    assert list(tmp_path.iterdir()) == []
