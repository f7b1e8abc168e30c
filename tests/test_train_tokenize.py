import json
import time

import numpy as np
import pytest
import torch

from arvideo.errors import ArvideoError
from arvideo.io import read_video, write_video
from arvideo.train.data import REPORT_FILE, ShardDataset
from arvideo.train.tokenize_data import tokenize_folder
from train_toy import StandInText, StandInTokenizer


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Four good clips, one image, one too-short clip and one corrupt file, with captions."""
    root = tmp_path_factory.mktemp("src")
    (root / "clips").mkdir()
    g = torch.Generator().manual_seed(0)
    rows = []
    for i, n_frames in enumerate([9, 11, 5, 9, 1, 9]):
        frames = torch.randint(0, 256, (n_frames, 16, 24, 3), generator=g, dtype=torch.uint8)
        name = f"clips/{i}.{'png' if n_frames == 1 else 'mp4'}"
        write_video(root / name, frames, fps=8.0)
        rows.append(f"{name},a clip number {i}")
    (root / "clips" / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    rows.insert(3, "clips/bad.mp4,a corrupt file")
    (root / "captions.csv").write_text("path,caption\n" + "\n".join(rows) + "\n")
    return root


def tokenize(src, out, **kwargs):
    return tokenize_folder(src, out, StandInTokenizer, StandInText, frames=9, shard_size=3, **kwargs)


def test_tokenize_skips_bad_items_and_stores_ids(folder, tmp_path):
    out = tmp_path / "tok"
    report = tokenize(folder, out)
    assert report["written"] == 5 and report["shards"] == 3
    reasons = {s["id"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"clips/bad.mp4", "clips/2.mp4"}
    assert reasons["clips/bad.mp4"].startswith("unreadable") and reasons["clips/2.mp4"].startswith(
        "too short"
    )
    assert json.loads((out / REPORT_FILE).read_text()) == report

    ds = ShardDataset(out)
    assert ds.ids == ["clips/0.mp4", "clips/1.mp4", "clips/3.mp4", "clips/4.png", "clips/5.mp4"]
    tok, text = StandInTokenizer(), StandInText()
    for item in (ds[i] for i in range(len(ds))):
        frames = read_video(folder / item.id).frames[:9]  # [T, H, W, 3]; the first 9 frames
        expected = tok.encode(frames.permute(3, 0, 1, 2)[None])[0].numpy()
        np.testing.assert_array_equal(item.visual, expected)
        assert item.visual.shape == ((1, 2, 3) if item.id.endswith(".png") else (3, 2, 3))
        assert item.text.tolist() == text.encode(f"a clip number {item.id[6]}")
        assert item.size == (16, 24) and item.fps == 8.0


def test_rerun_skips_finished_shards(folder, tmp_path):
    out = tmp_path / "tok"
    first = tokenize(folder, out)
    (out / "shard-00001.json").unlink()  # as if killed while writing shard 1
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    time.sleep(0.01)
    assert tokenize(folder, out) == first
    rewritten = {p.name for p in out.glob("shard-*") if stamps.get(p.name) != p.stat().st_mtime_ns}
    assert rewritten == {"shard-00001.npy", "shard-00001.json"}

    with pytest.raises(ArvideoError, match="started with different frames"):
        tokenize_folder(folder, out, StandInTokenizer, StandInText, frames=5, shard_size=3)
    with pytest.raises(
        ArvideoError, match=r"--frames must be 1 \+ k\*4 for this tokenizer, got 7; use 5 or 9"
    ):
        tokenize_folder(folder, tmp_path / "other", StandInTokenizer, StandInText, frames=7)


def test_parallel_workers_write_the_same_shards(folder, tmp_path):
    tokenize(folder, tmp_path / "one")
    tokenize(folder, tmp_path / "two", workers=2)
    for path in sorted((tmp_path / "one").glob("shard-*")):
        assert path.read_bytes() == (tmp_path / "two" / path.name).read_bytes()
