"""One object that says which id means what in a Lumos token sequence.

Every special id (BOS, separators, frame and video delimiters, new-line, MASK, number tokens,
the visual offset) lives here and nowhere else; the serializer, the positions, the masks, the
training objective and the sampler all read them from a `Vocab`.

Two layouts exist:
- `Vocab.official()`: the 129,536-id layout of the released Lumos-1 checkpoints (reference
  §2.1): Chameleon text ids 0..65535 with the specials at their reserved ids, Cosmos codes at
  65,536 + code.
- `Vocab.compact(text_vocab_size, codebook_size)`: the layout of the built-in models: a small
  text vocabulary, then the specials, then the number tokens, then the visual codebook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from arvideo.errors import ArvideoError

Layout = Literal["official", "compact"]

# Official ids (reference §2.1). `<reservedNNNNN>` has id NNNNN + 4.
_OFFICIAL = dict(
    size=129_536,
    bos=0,
    pad=0,
    sep=8710,
    image_end=8196,
    image_start=8197,
    new_line=8803,
    number_base=8804,
    n_numbers=9003 - 8804,  # the number tokens stop where MASK starts
    mask=9003,
    video_start=9004,
    video_end=9005,
    digit_base=16399,
    text_size=65_536,
    visual_offset=65_536,
    codebook_size=64_000,
    grid_unit=4,  # one grid token unit = 32 pixels = 4 latent rows of the 8x8 Cosmos tokenizer
)

# Compact layout: the specials that follow the text ids, in this order.
_COMPACT_SPECIALS = (
    "bos",
    "pad",
    "sep",
    "video_start",
    "video_end",
    "image_start",
    "image_end",
    "new_line",
    "mask",
)
_COMPACT_NUMBERS = 128  # number tokens for durations, fps and grid sizes 0..127


@dataclass(frozen=True)
class Vocab:
    """Ids of one vocabulary layout.

    `number_base + n` is the token for the small integer n (duration, fps, grid size);
    a grid token counts `grid_unit` latent rows (or columns). `digit_base + d` is the text token of
    the decimal digit d (official layout only: prompts write numbers digit by digit).
    """

    layout: Layout
    size: int
    bos: int
    pad: int
    sep: int
    image_start: int
    image_end: int
    new_line: int
    number_base: int
    n_numbers: int
    mask: int
    video_start: int
    video_end: int
    text_size: int
    visual_offset: int
    codebook_size: int
    grid_unit: int
    digit_base: int | None = None

    @classmethod
    def official(cls) -> Vocab:
        """The released Lumos-1 layout: 65,536 Chameleon text ids + 64,000 Cosmos codes."""
        return cls(layout="official", **_OFFICIAL)

    @classmethod
    def compact(cls, text_vocab_size: int, codebook_size: int) -> Vocab:
        """Text ids [0, text_vocab_size), specials, number tokens, then the visual codes."""
        if text_vocab_size < 1 or codebook_size < 1:
            raise ArvideoError(
                f"compact vocabulary needs text_vocab_size >= 1 and codebook_size >= 1, "
                f"got {text_vocab_size} and {codebook_size}"
            )
        specials = {name: text_vocab_size + i for i, name in enumerate(_COMPACT_SPECIALS)}
        number_base = text_vocab_size + len(_COMPACT_SPECIALS)
        visual_offset = number_base + _COMPACT_NUMBERS
        return cls(
            layout="compact",
            size=visual_offset + codebook_size,
            number_base=number_base,
            n_numbers=_COMPACT_NUMBERS,
            text_size=text_vocab_size,
            visual_offset=visual_offset,
            codebook_size=codebook_size,
            grid_unit=1,
            **specials,
        )

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        """Inverse of `to_dict` (the form stored in a model's config.json)."""
        layout = d.get("layout")
        if layout == "official":
            return cls.official()
        if layout == "compact":
            try:
                return cls.compact(int(d["text_vocab_size"]), int(d["codebook_size"]))
            except KeyError as e:
                raise ArvideoError(f"compact vocabulary description lacks field {e.args[0]!r}") from None
        raise ArvideoError(f"unknown vocabulary layout {layout!r}; expected 'official' or 'compact'")

    def to_dict(self) -> dict:
        if self.layout == "official":
            return {"layout": "official"}
        return {"layout": "compact", "text_vocab_size": self.text_size, "codebook_size": self.codebook_size}

    # ---- numbers -------------------------------------------------------------------------------

    def number(self, n: int) -> int:
        """The grid/number token of the small integer n."""
        if not 0 <= n < self.n_numbers:
            raise ArvideoError(f"number token value must be in [0, {self.n_numbers}), got {n}")
        return self.number_base + n

    def number_value(self, token: int) -> int:
        """Inverse of `number`."""
        n = token - self.number_base
        if not 0 <= n < self.n_numbers:
            raise ArvideoError(f"token {token} is not a number token")
        return n

    def digit_ids(self, n: int) -> list[int]:
        """Text ids writing the non-negative integer n digit by digit (official training form)."""
        if self.digit_base is None:
            raise ArvideoError(f"the {self.layout} vocabulary has no digit tokens")
        if n < 0:
            raise ArvideoError(f"only non-negative numbers are written with digit tokens, got {n}")
        return [self.digit_base + int(d) for d in str(n)]

    # ---- visual codes --------------------------------------------------------------------------

    def visual(self, codes: torch.Tensor) -> torch.Tensor:
        """Tokenizer codes -> token ids."""
        return codes + self.visual_offset

    def code(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> tokenizer codes (only meaningful where `is_visual`)."""
        return ids - self.visual_offset

    def is_visual(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids >= self.visual_offset) & (ids < self.visual_offset + self.codebook_size)
