"""The built-in model's recipe: its config agrees with the build chain and the size budget, and a tiny
variant of the chain runs end to end (data -> tokens -> train -> export), resumably."""

import itertools
import json
import math
import shlex
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import arvideo
from arvideo.errors import ArvideoError
from arvideo.eval import evaluate_pipeline
from arvideo.eval.floors import FLOORS_FILE, TARGET_METRICS, check_floors, read_floors
from arvideo.lumos.checkpoint import read_official_state, save_lumos
from arvideo.lumos.decoder import LumosDecoder
from arvideo.lumos.vocab import Vocab
from arvideo.pipelines.lumos import PipelineConfig
from arvideo.tokenizers import BUILTIN_DIR, BUILTIN_VIDEO, builtin_path, load_text_tokenizer
from arvideo.tokenizers.video import CausalTokenizerConfig, CausalVideoTokenizer
from arvideo.train.builtin import (
    RECIPES,
    SHIPPED_RECIPE,
    BuildPlan,
    build,
    check_config,
    commands,
    final_checkpoint,
    main,
    pipeline_config,
    recipe_plan,
    run_configs,
)
from arvideo.train.checkpoint import step_dir
from arvideo.train.config import load_config
from arvideo.train.lumos_task import PRESETS, decoder_config
from arvideo.train.metrics import read_log
from lumos_util import tiny_decoder

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "builtin-shapes.yaml"  # the first chain's first leg (tiny_plan's template)
BUDGET_MB = 40  # all built-in weights together (issue 6)


@pytest.fixture
def in_repo(monkeypatch):
    if not RECIPE.is_file():
        pytest.skip("configs/builtin-shapes.yaml is not part of this checkout")
    monkeypatch.chdir(ROOT)  # the recipe's paths are relative to the repository


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_each_recipe_chains_its_legs_on_the_folders_it_builds(in_repo, name):
    plan = recipe_plan(name)
    paths = run_configs(plan)
    legs = [load_config(path) for path in paths]
    for path, leg in zip(paths, legs, strict=True):
        check_config(plan, leg, path)  # trains and validates on exactly the folders the build writes
        assert leg.steps % leg.checkpoint.every == 0 and leg.checkpoint.every <= 200
    for before, after in itertools.pairwise(legs):  # each leg starts where the one before ended
        end = step_dir(Path(before.out_dir) / "checkpoints", before.steps)
        assert Path(after.checkpoint.init_from) == end
    assert legs[-1].task["mask"] == "tube_decay"  # both chains end with the tube_decay leg
    header = Path(paths[0]).read_text()
    recipe_flag = "" if name == SHIPPED_RECIPE else f" --recipe {name}"
    assert f"python -m arvideo.train.builtin{recipe_flag} --workers 2" in header  # how to run it
    if name == "shapes-v1":  # its header lists every command the build runs
        for step in commands(plan).values():
            for args in step:
                assert f"arvideo {shlex.join(args)}" in header


@pytest.mark.parametrize(
    ("name", "before_name", "tube_legs_after_first"),
    [("shapes-v3", "shapes-v2", 2), ("shapes-v2", "shapes-v1", 3)],
)
def test_each_fine_tune_retargets_the_staged_model_before_it(
    in_repo, name, before_name, tube_legs_after_first
):
    """Each chain after the first starts from the model before it (staged with its tokenizer) and
    trains on its own tokenizer's codes; the shipped one's tokenizer is the built-in one."""
    plan, before = recipe_plan(name), recipe_plan(before_name)
    if name == SHIPPED_RECIPE:
        assert plan == BuildPlan()  # the defaults are the shipped build
        assert (plan.tokenizer, Path(plan.out)) == ("builtin:shapes", BUILTIN_DIR / "lumos-shapes")
    config, *tube_legs, decay = (load_config(path) for path in run_configs(plan))
    for leg in (config, *tube_legs):  # tube legs on all four training folders, tokenized in data_dir
        assert len(leg.data.shards) == 4 and leg.task["mask"] == "tube"
    assert len(tube_legs) == tube_legs_after_first and decay.task["mask"] == "tube_decay"
    retarget, train, *continued = commands(plan)["train"]
    assert retarget[:3] == ["retarget", plan.start_from, config.checkpoint.init_from]
    assert [train[1], ",".join(args[1] for args in continued)] == [plan.config, plan.continue_configs]
    assert {part.name: part.seed for part in plan.parts()} == {
        part.name: part.seed for part in before.parts()
    }
    start = json.loads((ROOT / plan.start_from / "arvideo.json").read_text())
    assert Path(plan.start_from, start["tokenizer"]) == Path(before.tokenizer)  # the codes before


def test_each_chains_tokenizer_is_what_its_recipe_in_configs_trains(in_repo):
    tokenizers = {
        "configs/tokenizer-shapes.yaml": builtin_path(recipe_plan(SHIPPED_RECIPE).tokenizer, BUILTIN_VIDEO),
        "configs/tokenizer-shapes-v2.yaml": Path(recipe_plan("shapes-v2").tokenizer),
        "configs/tokenizer-shapes-v1.yaml": Path(recipe_plan("shapes-v1").tokenizer),
    }
    for recipe, folder in tokenizers.items():
        model = yaml.safe_load(Path(recipe).read_text())["model"]
        config_json = json.loads((folder / "config.json").read_text())
        assert {k: config_json[k] for k in model} == model


def test_the_shipped_model_fits_the_budget_and_is_the_staged_models_architecture(in_repo):
    """The first chain grows the `small` preset to 9 blocks; the staged model the shipped one starts
    from has that architecture, and it plus the tokenizer fits the budget in fp16."""
    first = recipe_plan("shapes-v1")
    legs = [load_config(path) for path in run_configs(first)]
    tokenizer = yaml.safe_load((ROOT / "configs" / "tokenizer-shapes.yaml").read_text())["model"]
    meta = {"text_vocab_size": load_text_tokenizer("builtin:shapes").vocab_size,
            "codebook_size": math.prod(tokenizer["levels"])}  # fmt: skip
    grown = decoder_config(legs[0].model, meta)
    grown.num_hidden_layers += sum(leg.task.get("add_layers", 0) for leg in legs)
    staged = json.loads((ROOT / recipe_plan(SHIPPED_RECIPE).start_from / "config.json").read_text())
    assert {k: staged[k] for k in ("num_hidden_layers", "hidden_size", "vocab_size")} == {
        "num_hidden_layers": grown.num_hidden_layers, "hidden_size": grown.hidden_size,
        "vocab_size": grown.vocab_size,
    }  # fmt: skip
    with torch.device("meta"):
        model = LumosDecoder(grown)
    model_mb = 2 * sum(p.numel() for p in model.parameters()) / 2**20  # exported in fp16
    tokenizer_mb = sum(f.stat().st_size for f in (BUILTIN_DIR / "tokenizer-shapes").iterdir()) / 2**20
    assert model_mb + tokenizer_mb <= BUDGET_MB, (model_mb, tokenizer_mb)


def test_the_shipped_settings_are_what_the_shipped_recipe_exports(in_repo):
    """A sampler default changed in the recipe must reach the shipped arvideo.json too."""
    shipped = json.loads((BUILTIN_DIR / "lumos-shapes" / "arvideo.json").read_text())
    assert pipeline_config(recipe_plan(SHIPPED_RECIPE), fps=shipped["fps"]).to_dict() == shipped


def test_recipe_sets_the_defaults_that_flags_override(in_repo, capsys):
    assert main(["--dry-run"]) == 0  # the shipped model's recipe: retarget the staged model first
    listed = capsys.readouterr().out
    assert "arvideo retarget stages/lumos-shapes-v2 " in listed and "--tokenizer builtin:shapes" in listed
    assert main(["--recipe", "shapes-v1", "--dry-run"]) == 0  # the first chain: from nothing
    listed = capsys.readouterr().out
    assert "retarget" not in listed and "--tokenizer stages/lumos-shapes-v1/tokenizer" in listed
    assert main(["--recipe", "shapes-v1", "--tokenizer", "other", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert "--tokenizer other" in listed and "stages/lumos-shapes-v1/tokenizer" not in listed
    with pytest.raises(SystemExit):
        main(["--recipe", "nope", "--dry-run"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    with pytest.raises(
        ArvideoError, match="unknown recipe 'nope'; choose from shapes-v3, shapes-v2, shapes-v1"
    ):
        recipe_plan("nope")


def test_run_configs_train_on_training_folders_and_validate_on_the_validation_ones(in_repo):
    plan, config = recipe_plan("shapes-v1"), load_config(RECIPE)
    config.data.shards = [str(plan.tokens("train-videos-two"))]  # any of the training folders will do
    check_config(plan, config, "x.yaml")
    config.data.shards = [str(plan.tokens("train-videos")), str(plan.tokens("val-videos"))]
    with pytest.raises(ArvideoError, match="x.yaml: `data.shards` .* training data to"):
        check_config(plan, config, "x.yaml")
    config.data.shards, config.eval.shards = (
        [str(plan.tokens("train-videos"))],
        [str(plan.tokens("val-videos"))],
    )
    with pytest.raises(ArvideoError, match="x.yaml: `eval.shards` .* but the build writes"):
        check_config(plan, config, "x.yaml")  # validation uses exactly the validation folders


def test_every_shipped_builtin_fits_the_budget():
    """Whatever is shipped (Lumos, its tokenizers, ARLON), all of it together stays within the budget."""
    shipped = [f for f in BUILTIN_DIR.rglob("*") if f.is_file()]
    total_mb = sum(f.stat().st_size for f in shipped) / 2**20
    assert total_mb <= BUDGET_MB, {str(f.relative_to(BUILTIN_DIR)): f.stat().st_size for f in shipped}


def tiny_plan(tmp_path: Path) -> BuildPlan:
    """The recipe at toy scale: 32x32 clips of 9 frames, the tiny model, a random stand-in tokenizer;
    4 steps, then 2 more in a continuation leg, then 2 more grown by one block that also train on
    the two-object clips."""
    torch.manual_seed(0)  # test-only: PyTorch's default init, so decoded pixels depend on the codes
    config = CausalTokenizerConfig(patch_size=4, channels=(8, 8), decoder_blocks=1, levels=(4, 4))
    CausalVideoTokenizer(config).save(tmp_path / "tok")
    plan = BuildPlan(
        config=str(tmp_path / "run.yaml"),
        continue_configs=f"{tmp_path / 'continue.yaml'},{tmp_path / 'grow.yaml'}",
        data_dir=str(tmp_path / "data"), videos=4, images=8, two_object_videos=2, more_two_object_videos=2,
        val_videos=2, val_images=2, size=32, frames=9, tokenizer=str(tmp_path / "tok"),
        out=str(tmp_path / "lumos-tiny"), sample_steps=2, sample_cfg=2.0, sample_image_cfg=2.0,
        start_from="",
    )  # fmt: skip
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe.update(out_dir=str(tmp_path / "run"), steps=4, model="tiny", log={"peak_flops": 1e10})
    recipe["task"]["shapesbench"] = {"cases": 3, "steps": 1}
    train, val = [[str(plan.tokens(f"{s}-{k}")) for k in ("videos", "images")] for s in ("train", "val")]
    recipe["data"].update(shards=train, batch_size=2, micro_batch_size=2, image_batch_size=4,
                          image_micro_batch_size=4)  # fmt: skip
    recipe["eval"].update(shards=val, every=2, items=4)
    recipe["checkpoint"] = {"every": 2, "keep": 2}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(recipe))
    recipe.update(out_dir=str(tmp_path / "continue"), steps=2, seed=1)
    recipe["checkpoint"]["init_from"] = str(tmp_path / "run" / "checkpoints" / "step-00000004")
    (tmp_path / "continue.yaml").write_text(yaml.safe_dump(recipe))
    recipe.update(out_dir=str(tmp_path / "grow"), seed=2)
    recipe["task"]["add_layers"] = 1
    recipe["data"]["shards"] = (
        [train[0]] + [str(plan.tokens(f"train-videos-two{b}")) for b in ("", "-b")] + [train[1]]
    )
    recipe["checkpoint"]["init_from"] = str(tmp_path / "continue" / "checkpoints" / "step-00000002")
    (tmp_path / "grow.yaml").write_text(yaml.safe_dump(recipe))
    return plan


def test_tiny_build_runs_the_chain_and_resumes(tmp_path, in_repo):
    plan = tiny_plan(tmp_path)
    assert build(plan, quiet=True) == Path(plan.out)

    # Every leg ran; the exported folder holds the last leg's last checkpoint in fp16 (upcast on
    # load) and arvideo.json.
    first, middle, config = [load_config(path) for path in run_configs(plan)]
    assert final_checkpoint(first).name == "step-00000004"
    assert final_checkpoint(middle).name == "step-00000002"
    checkpoint = final_checkpoint(config)
    assert checkpoint.name == "step-00000002"
    assert [r["step"] for r in read_log(Path(config.out_dir) / "log.csv")] == [1, 2]
    stored = read_official_state(plan.out)
    trained = load_file(checkpoint / "model.safetensors")
    assert stored.keys() == trained.keys() and all(v.dtype == torch.float16 for v in stored.values())
    assert all(torch.equal(stored[k], trained[k].half()) for k in stored)
    settings = json.loads((Path(plan.out) / "arvideo.json").read_text())
    assert settings["tokenizer"] == "../tok" and settings["text_tokenizer"] == "builtin:shapes"
    assert [settings[k] for k in ("width", "frames", "fps", "prompt")] == [32, 9, 8, "caption"]
    pipe = arvideo.load(plan.out)  # generates with the defaults it was exported with
    assert next(pipe.model.parameters()).dtype == torch.float32
    assert len(pipe.model.layers) == PRESETS["tiny"]["num_hidden_layers"] + 1  # grown by the last leg
    assert pipe("a small red circle moves to the right", seed=0).frames.shape == (9, 32, 32, 3)
    # ... and its quality floors: its own CI-subset scores rounded down, so it passes them with no margin.
    floors, _ = read_floors(Path(plan.out) / FLOORS_FILE)
    assert {task: tuple(metrics) for task, metrics in floors.items()} == TARGET_METRICS
    report = evaluate_pipeline(pipe, "v1", subset=True)
    assert not check_floors(report, Path(plan.out) / FLOORS_FILE)[1]
    assert all(
        floor <= min(0.9, report["tasks"][task]["metrics"][metric]["score"]) < floor + 0.1 + 1e-9
        for task, metrics in floors.items()
        for metric, floor in metrics.items()
    )
    rows = read_log(Path(first.out_dir) / "eval.csv")
    assert [r["step"] for r in rows] == [2, 4] and all(0 <= r["shapesbench"] <= 1 for r in rows)
    two, more_two = [
        [json.loads(line) for line in (plan.source(name) / "meta.jsonl").read_text().splitlines()]
        for name in ("train-videos-two", "train-videos-two-b")
    ]
    assert len(two) == len(more_two) == 2
    assert all(len(item["spec"]["objects"]) == 2 for item in two + more_two)
    assert [item["spec"] for item in two] != [item["spec"] for item in more_two]  # a stream of its own

    # Rerun after an interruption: a lost shard is tokenized again, nothing is retrained, the
    # export is kept unless asked for; the same checkpoint exports the same weights.
    log = (Path(config.out_dir) / "log.csv").read_text()
    (plan.tokens("val-images") / "shard-00000.json").unlink()
    assert build(plan, quiet=True) is None
    assert (plan.tokens("val-images") / "shard-00000.json").is_file()
    assert (Path(config.out_dir) / "log.csv").read_text() == log
    assert build(plan, overwrite=True, quiet=True) == Path(plan.out)
    assert all(torch.equal(read_official_state(plan.out)[k], v) for k, v in stored.items())

    grow = tmp_path / "grow.yaml"
    continuation = yaml.safe_load(grow.read_text())
    continuation["checkpoint"]["init_from"] = str(tmp_path / "continue" / "checkpoints" / "step-00000001")
    grow.write_text(yaml.safe_dump(continuation))
    with pytest.raises(ArvideoError, match="grow.yaml: .* continues .*continue.yaml, whose last checkpoint"):
        build(plan, quiet=True)  # a continuation must start where the leg before ended

    plan.continue_configs = ""
    plan.videos = 5  # a data folder that does not match the plan is never silently reused
    with pytest.raises(ArvideoError, match="holds 4 items, the plan 5"):
        build(plan, quiet=True)
    plan.data_dir = str(tmp_path / "elsewhere")
    with pytest.raises(ArvideoError, match="`data.shards` is .* but the build writes training data to"):
        build(plan, quiet=True)


def test_tiny_build_starts_from_a_model_of_another_tokenizer(tmp_path, in_repo):
    """start_from: the build moves the model onto its tokenizer (`arvideo retarget`) into the first
    config's init_from, once, and trains from there."""
    plan = tiny_plan(tmp_path)
    torch.manual_seed(1)
    old = CausalTokenizerConfig(patch_size=4, channels=(8, 8), decoder_blocks=1, levels=(4, 4))
    CausalVideoTokenizer(old).save(tmp_path / "tok-old")
    text = load_text_tokenizer("builtin:shapes")
    save_lumos(tiny_decoder(vocab=Vocab.compact(text.vocab_size, 16)), tmp_path / "start")
    settings = PipelineConfig(tokenizer="../tok-old", text_tokenizer="builtin:shapes", prompt="caption")
    (tmp_path / "start" / "arvideo.json").write_text(json.dumps(settings.to_dict()))
    leg = yaml.safe_load((tmp_path / "continue.yaml").read_text())
    leg["checkpoint"]["init_from"] = str(tmp_path / "moved")
    (tmp_path / "continue.yaml").write_text(yaml.safe_dump(leg))
    plan.config, plan.continue_configs, plan.start_from = (
        str(tmp_path / "continue.yaml"),
        "",
        str(tmp_path / "start"),
    )
    assert commands(plan)["train"][0][:3] == ["retarget", plan.start_from, str(tmp_path / "moved")]

    assert build(plan, quiet=True) == Path(plan.out)
    moved = json.loads((tmp_path / "moved" / "arvideo.json").read_text())
    assert moved["tokenizer"] == "../tok"  # the plan's tokenizer, as the export names it too
    assert json.loads((Path(plan.out) / "arvideo.json").read_text())["tokenizer"] == "../tok"
    start, trained = read_official_state(tmp_path / "start"), read_official_state(tmp_path / "moved")
    assert torch.equal(start["model.norm.weight"], trained["model.norm.weight"])  # only code rows change
    assert not torch.equal(start["lm_head.weight"], trained["lm_head.weight"])
    stamp = (tmp_path / "moved" / "model.safetensors").stat().st_mtime_ns
    assert build(plan, quiet=True) is None  # a rerun keeps the moved start and the finished leg
    assert (tmp_path / "moved" / "model.safetensors").stat().st_mtime_ns == stamp

    leg["checkpoint"].pop("init_from")
    (tmp_path / "continue.yaml").write_text(yaml.safe_dump(leg))
    with pytest.raises(ArvideoError, match="set `checkpoint.init_from` to the folder"):
        build(plan, quiet=True)
