"""Token sequences: (prompt, frames of codes, duration, fps) <-> ids, and their structure.

Layout of a conditional sample (reference §2.3), the same for both `Vocab` layouts:

    [bos] text [sep] [video_start][n(duration)][n(fps)]
        { [image_start][n(H'/u)][n(W'/u)]  H' rows of (W' codes + new_line)  [image_end] } x T'
    [video_end][sep]

n(k) is the number token of k, u the vocabulary's grid unit (4 latent rows = 32 pixels in the
official layout). The unconditional (CFG) sequence is the same without `[bos] text [sep]`.
An image is a one-frame video.

`structure` finds, vectorised over a whole [B, L] batch, which frame every token belongs to and
where every frame-body slot sits (row, column); MM-RoPE positions, the frame-causal attention
mask and AR-DF masking are all built from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from arvideo.errors import ArvideoError
from arvideo.lumos.vocab import Vocab

IGNORE = -100  # label of tokens that never enter a loss (torch's cross-entropy ignore index)

# Official prompt (reference §2.2): width first, numbers written literally at inference.
PROMPT_TEMPLATE = (
    "Generate a video with a resolution of {width}x{height}, consisting of {frames} frames at {fps} "
    "frames per second, according to the following prompt:\n {caption}"
)


def prompt_text(caption: str, width: int, height: int, duration: int, fps: int) -> str:
    """The official Lumos-1 instruction wrapped around a caption (an image: duration = fps = 1)."""
    return PROMPT_TEMPLATE.format(width=width, height=height, frames=fps * duration, fps=fps, caption=caption)


# ---- building ------------------------------------------------------------------------------------


def prompt_ids(vocab: Vocab, text_ids: Sequence[int]) -> torch.Tensor:
    """[bos] text [sep]: the conditional prefix in front of `video_start`."""
    return torch.tensor([vocab.bos, *text_ids, vocab.sep], dtype=torch.long)


def video_header(vocab: Vocab, duration: int, fps: int) -> torch.Tensor:
    """[video_start][n(duration)][n(fps)]."""
    return torch.tensor([vocab.video_start, vocab.number(duration), vocab.number(fps)], dtype=torch.long)


def frame_length(height: int, width: int) -> int:
    """Tokens of one frame: image_start, two grid tokens, H' rows of (W' + new_line), image_end."""
    return 3 + height * (width + 1) + 1


def code_slots(height: int, width: int) -> torch.Tensor:
    """Indices, inside one frame's tokens, of its H'*W' code slots in raster order."""
    rows = torch.arange(height)[:, None] * (width + 1)  # [H', 1]
    return (3 + rows + torch.arange(width)[None, :]).flatten()  # [H'*W']


def frame_ids(vocab: Vocab, codes: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
    """One frame's tokens from codes [H', W']; slots where `masked` [H', W'] is True become MASK."""
    height, width = codes.shape
    for name, n in (("height", height), ("width", width)):
        if n % vocab.grid_unit:
            raise ArvideoError(
                f"frame {name} of {n} latents is not a multiple of {vocab.grid_unit} "
                f"(the {vocab.layout} layout counts frame sizes in units of {vocab.grid_unit} latents)"
            )
    ids = vocab.visual(codes.long())  # [H', W']
    if masked is not None:
        ids = torch.where(masked, vocab.mask, ids)
    new_lines = torch.full((height, 1), vocab.new_line, dtype=torch.long)
    body = torch.cat([ids, new_lines], dim=1).flatten()  # [H' * (W' + 1)]
    head = [
        vocab.image_start,
        vocab.number(height // vocab.grid_unit),
        vocab.number(width // vocab.grid_unit),
    ]
    return torch.cat([torch.tensor(head), body, torch.tensor([vocab.image_end])])


def serialize(
    vocab: Vocab,
    text_ids: Sequence[int] | None,
    codes: torch.Tensor,
    duration: int,
    fps: int,
    close: bool = True,
) -> torch.Tensor:
    """The full sequence [L] for codes [T', H', W']; `text_ids=None` gives the unconditional one.

    `close=False` leaves out the trailing [video_end][sep] (a sequence still being generated).
    """
    if codes.dim() != 3:
        raise ArvideoError(f"frames must be codes of shape [T', H', W'], got shape {tuple(codes.shape)}")
    parts = [] if text_ids is None else [prompt_ids(vocab, text_ids)]
    parts.append(video_header(vocab, duration, fps))
    parts += [frame_ids(vocab, frame) for frame in codes]
    if close:
        parts.append(torch.tensor([vocab.video_end, vocab.sep]))
    return torch.cat(parts)


def unconditional(vocab: Vocab, ids: torch.Tensor) -> torch.Tensor:
    """The CFG sequence: everything from `video_start` on (drops bos, text and the first sep)."""
    starts = (ids == vocab.video_start).nonzero().flatten()
    if len(starts) != 1:
        raise ArvideoError(f"sequence must hold exactly one video_start token, found {len(starts)}")
    return ids[starts[0] :]


def training_labels(vocab: Vocab, ids: torch.Tensor) -> torch.Tensor:
    """Labels [..., L]: IGNORE before the first video_start, the ids themselves from it on."""
    after = torch.cumsum(ids == vocab.video_start, dim=-1) > 0
    return torch.where(after, ids, IGNORE)


def pad_batch(
    vocab: Vocab, ids: Sequence[torch.Tensor], labels: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad samples to [B, L] (pad id, IGNORE labels): padding is harmless only on the right,
    where causality keeps every real token from seeing it (reference §3.1)."""
    length = max(len(x) for x in ids)
    out_ids = torch.full((len(ids), length), vocab.pad, dtype=torch.long)
    out_labels = torch.full((len(ids), length), IGNORE, dtype=torch.long)
    for b, (x, y) in enumerate(zip(ids, labels, strict=True)):
        out_ids[b, : len(x)] = x
        out_labels[b, : len(y)] = y
    return out_ids, out_labels


# ---- parsing -------------------------------------------------------------------------------------


@dataclass
class ParsedSequence:
    text_ids: list[int] | None  # None for an unconditional sequence
    duration: int
    fps: int
    codes: torch.Tensor  # [T', H', W']


def parse(vocab: Vocab, ids: torch.Tensor) -> ParsedSequence:
    """Inverse of `serialize`; a malformed sequence raises ArvideoError saying where and why.

    The trailing [video_end][sep] may be absent (a sequence cut after its last complete frame).
    """
    ids = ids.flatten().long()
    tokens = ids.tolist()
    n = len(tokens)
    starts = [i for i, t in enumerate(tokens) if t == vocab.video_start]
    if len(starts) != 1:
        raise ArvideoError(
            f"sequence must hold exactly one video_start ({vocab.video_start}), found {len(starts)}"
        )
    vs = starts[0]
    if vs == 0:
        text_ids = None
    elif tokens[0] == vocab.bos and tokens[vs - 1] == vocab.sep and vs >= 2:
        text_ids = tokens[1 : vs - 1]
    else:
        raise ArvideoError(f"the prompt before video_start must be [bos] text [sep]; got ids {tokens[:vs]}")
    if vs + 3 > n:
        raise ArvideoError(f"sequence ends inside the video header at index {n}")
    duration, fps = vocab.number_value(tokens[vs + 1]), vocab.number_value(tokens[vs + 2])

    frames, size, pos = [], None, vs + 3
    while pos < n and tokens[pos] == vocab.image_start:
        frames.append(_parse_frame(vocab, ids, pos, len(frames)))
        if size is not None and frames[-1].shape != size:
            raise ArvideoError(
                f"frame {len(frames) - 1} has size {tuple(frames[-1].shape)} but frame 0 has {tuple(size)}"
            )
        size = frames[-1].shape
        pos += frame_length(*size)
    rest = tokens[pos:]
    if rest not in ([], [vocab.video_end], [vocab.video_end, vocab.sep]):
        raise ArvideoError(
            f"unexpected token {tokens[pos]} at index {pos}: expected image_start or video_end"
        )
    if not frames:
        raise ArvideoError("sequence holds no frame (no image_start after the video header)")
    return ParsedSequence(text_ids, duration, fps, torch.stack(frames))


def _parse_frame(vocab: Vocab, ids: torch.Tensor, pos: int, index: int) -> torch.Tensor:
    """Codes [H', W'] of the frame whose image_start is at `pos`."""
    if pos + 3 > len(ids):
        raise ArvideoError(f"frame {index} at index {pos} is cut inside its header")
    height = vocab.number_value(int(ids[pos + 1])) * vocab.grid_unit
    width = vocab.number_value(int(ids[pos + 2])) * vocab.grid_unit
    end = pos + frame_length(height, width) - 1
    if end >= len(ids) or int(ids[end]) != vocab.image_end:
        raise ArvideoError(
            f"frame {index} ({height}x{width} latents) at index {pos} has no image_end at index {end}"
        )
    body = ids[pos + 3 : end].view(height, width + 1)  # [H', W' + 1]
    bad_nl = (body[:, -1] != vocab.new_line).nonzero()
    if len(bad_nl):
        row = int(bad_nl[0])
        raise ArvideoError(
            f"frame {index}, row {row}: expected new_line at index {pos + 3 + row * (width + 1) + width}"
        )
    bad = (~vocab.is_visual(body[:, :-1])).nonzero()
    if len(bad):
        r, c = (int(x) for x in bad[0])
        token = int(body[r, c])
        what = "a MASK token (the frame is not fully decoded)" if token == vocab.mask else f"token {token}"
        raise ArvideoError(f"frame {index}, row {r}, column {c} holds {what}, not a visual code")
    return vocab.code(body[:, :-1])


# ---- structure (vectorised) ----------------------------------------------------------------------


@dataclass
class Structure:
    """Role of every token of a [B, L] batch, derived from the ids alone.

    A frame segment runs from its image_start to its image_end inclusive (an image_start without
    image_end runs to the end); the body is the H' * (W' + 1) code and new-line slots inside it.
    """

    frame: torch.Tensor  # [B, L] long: frames started so far - 1 (counted over the whole sequence)
    in_frame: torch.Tensor  # [B, L] bool: inside a frame segment
    segment_end: torch.Tensor  # [B, L] long: index of the segment's last token (own index outside)
    body: torch.Tensor  # [B, L] bool: code or new-line slot of a frame body
    row: torch.Tensor  # [B, L] long: body row (0 outside the body)
    col: torch.Tensor  # [B, L] long: body column, W' for the new-line slot (0 outside the body)
    width: torch.Tensor  # [B, L] long: W' of the token's frame (0 outside frames)

    @property
    def slot(self) -> torch.Tensor:
        """[B, L] long: index of a body slot inside its frame body (row-major, new-lines included)."""
        return self.row * (self.width + 1) + self.col

    @property
    def first_body(self) -> torch.Tensor:
        """[B] long: index of the first body slot of each sample (its length L if it has none)."""
        length = self.body.shape[1]
        idx = torch.arange(length, device=self.body.device)
        return torch.where(self.body, idx, length).min(dim=1).values


def structure(ids: torch.Tensor, vocab: Vocab) -> Structure:
    """Frame membership and body coordinates of every token, with no loop over tokens."""
    _, length = ids.shape  # [B, L]
    idx = torch.arange(length, device=ids.device)
    is_start, is_end = ids == vocab.image_start, ids == vocab.image_end
    n_starts = torch.cumsum(is_start, dim=1)  # [B, L]
    ends_before = torch.cumsum(is_end, dim=1) - is_end.long()
    in_frame = n_starts > ends_before

    # index of the latest image_start, and of the next image_end (L - 1 if the frame is still open)
    start = torch.cummax(torch.where(is_start, idx, -1), dim=1).values  # [B, L]
    next_end = torch.where(is_end, idx, length - 1).flip(1).cummin(dim=1).values.flip(1)
    segment_end = torch.where(in_frame, next_end, idx)

    height, width = (
        (ids.gather(1, (start + k).clamp(0, length - 1)) - vocab.number_base).clamp(min=0) * vocab.grid_unit
        for k in (1, 2)
    )  # [B, L] each: frame size read from the two grid tokens after image_start
    offset = idx - start - 3
    body = in_frame & (start >= 0) & (offset >= 0) & (offset < height * (width + 1))
    row = torch.where(body, offset // (width + 1), 0)
    col = torch.where(body, offset % (width + 1), 0)
    width = torch.where(in_frame, width, 0)
    return Structure(n_starts - 1, in_frame, segment_end, body, row, col, width)


def header_timing(n_latent: int, fps: float, temporal_compression: int) -> tuple[int, int]:
    """(duration s, fps) written after video_start: (1, 1) for an image, as in the reference."""
    if n_latent == 1:
        return 1, 1
    fps_int = max(1, round(fps))
    pixel_frames = 1 + temporal_compression * (n_latent - 1)
    return max(1, round(pixel_frames / fps_int)), fps_int
