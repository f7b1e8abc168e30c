"""Text tokenizers: a small byte-level BPE for the built-in models, and the Chameleon BPE loader.

Both are HF `tokenizers` JSON files behind one tiny interface (`TextTokenizer`): `encode(text)`
gives ids WITHOUT the BOS token (callers prepend `bos_id`, as Lumos-1 does: `[BOS] + encode(...)`,
reference lumos1.md §2.2), `decode(ids)`, `vocab_size`, `bos_id`.

- Built-in: byte-level BPE trained on shapes captions (and the same captions inside the Lumos-1
  prompt template), digits split one per token like Chameleon; BOS `<s>` is id 0.
- Chameleon `text_tokenizer.json` (the file the released Lumos-1 checkpoints use): loaded as is, so
  the ids are the official ones (BOS 0, digit d = 16399 + d). The copy shipped with Lumos-1 appends
  its 64,000 visual-code names as one nested list in `added_tokens` (reference §9.17), which the
  `tokenizers` library rejects; the loader flattens that list and drops every entry at or above
  the 65,536 text ids, since visual ids are an offset in the vocabulary, not text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from arvideo.errors import ArvideoError
from arvideo.files import atomic_write

BOS_TOKEN = "<s>"
CHAMELEON_TEXT_VOCAB = 65536  # Chameleon BPE ids (incl. its unused image tokens); visual ids start here
# Lumos-1's prompt template (reference lumos1.md §2.2); the built-in BPE also learns its words.
LUMOS_PROMPT_TEMPLATE = (
    "Generate a video with a resolution of {width}x{height}, consisting of {frames} frames at {fps} frames "
    "per second, according to the following prompt:\n {caption}"
)


class TextTokenizer:
    """A `tokenizers.Tokenizer` with arvideo's small interface; BOS is never added by `encode`."""

    def __init__(self, tokenizer: Tokenizer, bos_token: str = BOS_TOKEN):
        bos_id = tokenizer.token_to_id(bos_token)
        if bos_id is None:
            raise ArvideoError(f"text tokenizer has no {bos_token!r} token; is this a BPE tokenizer.json?")
        self.tokenizer = tokenizer
        self.bos_id: int = bos_id
        self.vocab_size: int = tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        with atomic_write(path, overwrite=overwrite) as tmp:
            self.tokenizer.save(str(tmp))
        return Path(path)

    @classmethod
    def from_file(cls, path: str | Path) -> TextTokenizer:
        """Load a tokenizer.json (built-in BPE or Chameleon's text_tokenizer.json)."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ArvideoError(f"cannot read text tokenizer {path}: {err}") from None
        try:
            return cls(Tokenizer.from_str(json.dumps(_text_only(raw))))
        except Exception as err:  # the Rust side raises plain Exceptions for malformed files
            raise ArvideoError(f"{path} is not a valid tokenizers JSON file: {err}") from None


def _text_only(raw: dict) -> dict:
    """Flatten nested `added_tokens` lists and drop tokens with ids in the visual range (>= 65,536)."""
    added = []
    for entry in raw.get("added_tokens") or []:
        added += [
            e for e in (entry if isinstance(entry, list) else [entry]) if e["id"] < CHAMELEON_TEXT_VOCAB
        ]
    vocab = raw.get("model", {}).get("vocab")
    if isinstance(vocab, dict):
        raw["model"]["vocab"] = {k: v for k, v in vocab.items() if v < CHAMELEON_TEXT_VOCAB}
    return {**raw, "added_tokens": added}


def train_bpe(texts: Iterable[str], vocab_size: int) -> TextTokenizer:
    """Train a byte-level BPE (digits split one per token, BOS `<s>` = id 0) on `texts`."""
    n_base = len(pre_tokenizers.ByteLevel.alphabet()) + 1  # every byte plus <s>
    if vocab_size < n_base:
        raise ArvideoError(f"vocab_size must be >= {n_base} (all bytes and <s>), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return TextTokenizer(tok)


def shapes_captions(n: int, seed: int) -> Iterator[str]:
    """n captions of the shapes world (alternating videos and images), every other one inside the
    Lumos-1 prompt template with the built-in clip's numbers."""
    from arvideo.data.shapes import DEFAULT_FRAMES, DEFAULT_SIZE, caption, random_spec

    rng = np.random.default_rng(seed)
    for i in range(n):
        spec = random_spec(rng, "video" if i % 2 == 0 else "image")
        text = caption(spec, rng)
        if i % 4 < 2:
            frames = DEFAULT_FRAMES if spec.kind == "video" else 1
            text = LUMOS_PROMPT_TEMPLATE.format(
                width=DEFAULT_SIZE,
                height=DEFAULT_SIZE,
                frames=frames,
                fps=8 if frames > 1 else 1,
                caption=text,
            )
        yield text


def train_shapes_bpe(cfg, overwrite: bool = False) -> Path:
    """Train the built-in caption BPE from a `BpeTrainConfig`; writes `{cfg.out}/tokenizer.json`."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(shapes_captions(cfg.n_captions, cfg.seed), cfg.vocab_size)
    return tok.save(out / "tokenizer.json", overwrite=overwrite)
