"""Text tokenizers: the shapes-caption BPE and the Chameleon tokenizer.json loader (official ids)."""

import json

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from arvideo.errors import ArvideoError
from arvideo.tokenizers import load_text_tokenizer
from arvideo.tokenizers.text import TextTokenizer, shapes_captions, train_bpe


@pytest.fixture(scope="module")
def bpe():
    return train_bpe(shapes_captions(2000, seed=0), vocab_size=512)


def test_bpe_round_trips_captions_and_any_text(bpe):
    assert bpe.bos_id == 0 and 300 < bpe.vocab_size <= 512  # at most: merges stop when words are whole
    for text in list(shapes_captions(50, seed=1)) + ["a purple hexagon ünïcode ✓ 123", ""]:
        ids = bpe.encode(text)
        assert bpe.bos_id not in ids  # BOS is the caller's to add
        assert bpe.decode(ids) == text
        assert all(0 <= i < bpe.vocab_size for i in ids)


def test_bpe_learns_the_world_words_and_splits_digits(bpe):
    caption = "a large red circle moves to the left on a black background"
    assert len(bpe.encode(caption)) == len(caption.split())  # every word is one token
    digits = bpe.encode("17 frames at 8")
    assert [bpe.decode([i]) for i in digits[:2]] == ["1", "7"]  # one token per digit, like Chameleon


def test_bpe_save_load_and_reproducibility(bpe, tmp_path):
    bpe.save(tmp_path / "tokenizer.json")
    loaded = load_text_tokenizer(tmp_path)
    text = "a small blue star sits in the top left"
    assert loaded.encode(text) == bpe.encode(text) and loaded.vocab_size == bpe.vocab_size
    again = train_bpe(shapes_captions(2000, seed=0), vocab_size=512)
    assert again.tokenizer.to_str() == bpe.tokenizer.to_str()  # same captions, same tokenizer


def chameleon_like_json() -> dict:
    """A tokenizer.json shaped like Chameleon's: <s> = 0, reserved tokens, digits split one per token,
    ids up to 65,535, plus the visual names Lumos-1 appends as ONE nested list (reference §9.17)."""
    vocab = {"<s>": 0, "</s>": 1, "<pad>": 2, "<unk>": 3}
    vocab.update({f"<reserved{n:05d}>": n + 4 for n in range(8796, 8802)})  # general rule: id = N + 4
    vocab.update({str(d): 16399 + d for d in range(10)})  # digits (reference §2.1)
    vocab.update({c: 20000 + i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz ")})
    vocab.update({"ab": 30000, "VIDVIDAAAAAZ": 65536})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("a", "b")], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Digits(individual_digits=True)
    tok.add_special_tokens(["<s>", "</s>"])
    raw = json.loads(tok.to_str())
    raw["added_tokens"].append(
        [{"id": 65536 + k, "content": f"VIDVID{k}Z", "single_word": False, "lstrip": False, "rstrip": False,
          "normalized": False, "special": True} for k in range(3)]
    )  # fmt: skip
    return raw


def test_chameleon_loader_gives_official_ids(tmp_path):
    path = tmp_path / "text_tokenizer.json"
    path.write_text(json.dumps(chameleon_like_json()))
    with pytest.raises(Exception, match="invalid type: sequence"):  # as Lumos-1 ships it: rejected
        Tokenizer.from_file(str(path))
    tok = load_text_tokenizer(tmp_path)
    assert isinstance(tok, TextTokenizer) and tok.bos_id == 0
    assert tok.encode("24") == [16401, 16403]  # the ids in data/num2tokens.json (reference §2.2)
    assert tok.encode("ab c") == [30000, 20026, 20002]
    assert tok.vocab_size == 4 + 6 + 10 + 27 + 1  # visual names dropped: they are an id offset, not text


def test_text_tokenizer_errors(tmp_path):
    with pytest.raises(ArvideoError, match="builtin:shapes"):
        load_text_tokenizer("builtin:nope")
    with pytest.raises(ArvideoError, match="no tokenizer.json"):
        load_text_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ArvideoError, match="cannot read"):
        load_text_tokenizer(tmp_path / "tokenizer.json")
    with pytest.raises(ArvideoError, match="vocab_size must be"):
        train_bpe(["a b"], vocab_size=100)


def test_builtin_bpe_is_reproduced_by_its_config(tmp_path):
    """`arvideo train configs/text-shapes.yaml` makes exactly the shipped tokenizer.json."""
    from pathlib import Path

    from arvideo.tokenizers import BUILTIN_DIR
    from arvideo.tokenizers.train import load_train_config, train_from_config

    config_path = Path(__file__).resolve().parents[1] / "configs" / "text-shapes.yaml"
    if not config_path.is_file():
        pytest.skip("configs/text-shapes.yaml is not part of this checkout")
    cfg = load_train_config(config_path)
    (tmp_path / "c.json").write_text(json.dumps({**vars(cfg), "out": str(tmp_path / "bpe")}))
    made = train_from_config(tmp_path / "c.json")
    assert made.read_text() == (BUILTIN_DIR / "text-shapes" / "tokenizer.json").read_text()
    builtin = load_text_tokenizer("builtin:shapes")
    assert builtin.bos_id == 0 and builtin.vocab_size <= 512
