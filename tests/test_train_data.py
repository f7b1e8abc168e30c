import numpy as np
import pytest
import torch

from arvideo.errors import ArvideoError
from arvideo.train.config import DataConfig
from arvideo.train.data import (
    META_FILE,
    ShardDataset,
    StepStream,
    bucketed_batches,
    finished_shards,
    pad_sequences,
    write_shard,
)
from train_toy import make_shards, random_item


def test_shard_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    items = [random_item(rng, i, frames=1 + i % 3) for i in range(7)]
    write_shard(tmp_path, 0, items[:4])
    write_shard(tmp_path, 1, items[4:])
    write_shard(tmp_path, 2, [])  # every item of a shard may have been skipped
    (tmp_path / META_FILE).write_text("{}")
    assert finished_shards(tmp_path) == {0, 1, 2}
    ds = ShardDataset(tmp_path)
    assert len(ds) == 7
    for i, item in enumerate(items):
        got = ds[i]
        assert got.id == item.id and got.fps == item.fps and got.size == item.size
        np.testing.assert_array_equal(got.text, item.text)
        np.testing.assert_array_equal(got.visual, item.visual)
        assert got.visual.shape == item.visual.shape and got.is_image == (item.visual.shape[0] == 1)
    assert ds.lengths.tolist() == [len(it.text) + it.visual.size for it in items]
    assert isinstance(ds._tokens(0), np.memmap)  # tokens are memory-mapped, not read into RAM


def test_missing_or_mismatched_folders_are_user_errors(tmp_path):
    with pytest.raises(ArvideoError, match="not a tokenized data folder"):
        ShardDataset(tmp_path)
    make_shards(tmp_path / "a", 4)
    make_shards(tmp_path / "b", 4)
    (tmp_path / "b" / META_FILE).write_text('{"tokenizer": "other", "text_tokenizer": "toy"}')
    with pytest.raises(ArvideoError, match="same tokenizers"):
        ShardDataset([tmp_path / "a", tmp_path / "b"])


def test_bucketed_batches_are_deterministic_sorted_and_complete():
    lengths = np.random.default_rng(1).integers(10, 1000, size=103)
    idx = np.arange(103)
    a = bucketed_batches(idx, lengths, batch_size=4, window=5, rng=np.random.default_rng([7, 0]))
    b = bucketed_batches(idx, lengths, batch_size=4, window=5, rng=np.random.default_rng([7, 0]))
    c = bucketed_batches(idx, lengths, batch_size=4, window=5, rng=np.random.default_rng([7, 1]))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # a new epoch reshuffles
    assert a.shape == (25, 4) and len(np.unique(a)) == 100  # 3 left over, no repeats
    # Bucketing pays: the padding (max - mean length per batch) is far below that of random batches.
    random_batches = np.random.default_rng(0).permutation(idx)[:100].reshape(25, 4)

    def waste(batches):
        return (lengths[batches].max(1) - lengths[batches].mean(1)).mean()

    assert waste(a) < 0.5 * waste(random_batches)


def stream(ds, rank=0, world=1, **cfg):
    base = {
        "shards": "unused",
        "batch_size": 4,
        "micro_batch_size": 2,
        "image_batch_size": 6,
        "image_micro_batch_size": 3,
        "video_steps_per_image_step": 2,
        "bucket_window": 2,
    }
    return StepStream(ds, DataConfig(**{**base, **cfg}), seed=3, rank=rank, world_size=world)


def test_step_stream_alternates_resumes_and_splits_over_ranks(tmp_path):
    ds = ShardDataset(make_shards(tmp_path, n_videos=10, n_images=13))
    s = stream(ds)
    steps = [s.next_step() for _ in range(30)]  # several epochs of both streams
    kinds = ["image" if ds.is_image[m[0][0]] else "video" for m in steps]
    assert kinds[:6] == ["video", "video", "image"] * 2
    assert all(
        len(m) == 2 and all(len(b) == 2 for b in m) for m, k in zip(steps, kinds, strict=True) if k == "video"
    )
    assert all(
        len(m) == 2 and all(len(b) == 3 for b in m) for m, k in zip(steps, kinds, strict=True) if k == "image"
    )
    assert all(ds.is_image[b].all() == (k == "image") for m, k in zip(steps, kinds, strict=True) for b in m)

    # Resume: a fresh stream loaded with the position after step 11 continues identically.
    s2 = stream(ds)
    for _ in range(11):
        s2.next_step()
    s3 = stream(ds)
    s3.load_state_dict(s2.state_dict())
    for expected in steps[11:]:
        got = s3.next_step()
        assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))

    # Two ranks: rank-strided halves of the same global batch, disjoint, together the 1-rank batch.
    r0, r1 = stream(ds, 0, 2, micro_batch_size=1), stream(ds, 1, 2, micro_batch_size=1)
    for expected in steps[:9]:
        a, b = np.concatenate(r0.next_step()), np.concatenate(r1.next_step())
        assert not set(a) & set(b) and sorted([*a, *b]) == sorted(np.concatenate(expected))


def test_batch_sizes_must_divide(tmp_path):
    ds = ShardDataset(make_shards(tmp_path, n_videos=10))
    with pytest.raises(
        ArvideoError, match=r"batch size \(4\) must be a multiple of the micro-batch size \(3\)"
    ):
        stream(ds, micro_batch_size=3)
    with pytest.raises(ArvideoError, match="fewer than one batch of 16"):
        stream(ds, batch_size=16)


def test_pad_sequences():
    ids, lengths = pad_sequences([np.array([1, 2, 3]), np.array([4])], pad_value=9)
    assert ids.tolist() == [[1, 2, 3], [4, 9, 9]] and lengths.tolist() == [3, 1] and ids.dtype == torch.long
