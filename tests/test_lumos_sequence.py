"""Vocabulary layouts, the serializer and its parser, and the vectorised sequence structure."""

import pytest
import torch

from arvideo.errors import ArvideoError
from arvideo.lumos.sequence import (
    IGNORE,
    code_slots,
    frame_ids,
    frame_length,
    pad_batch,
    parse,
    prompt_text,
    serialize,
    structure,
    training_labels,
    unconditional,
)
from arvideo.lumos.vocab import Vocab
from lumos_util import COMPACT

OFFICIAL = Vocab.official()


def test_official_ids_match_reference():
    v = OFFICIAL
    assert (v.size, v.bos, v.sep, v.image_end, v.image_start) == (129536, 0, 8710, 8196, 8197)
    assert (v.new_line, v.mask, v.video_start, v.video_end) == (8803, 9003, 9004, 9005)
    assert v.number(2) == 8806 and v.number(12) == 8816 and v.visual_offset == 65536
    assert v.codebook_size == 64000 and v.visual_offset + v.codebook_size == v.size
    assert v.digit_ids(24) == [16401, 16403]  # data/num2tokens.json: "24" -> [16401, 16403]
    with pytest.raises(ArvideoError, match="number token value"):
        v.number(199)  # would collide with MASK 9003


def test_compact_layout_is_dense_and_disjoint():
    v = Vocab.compact(text_vocab_size=300, codebook_size=1000)
    specials = [
        v.bos,
        v.pad,
        v.sep,
        v.video_start,
        v.video_end,
        v.image_start,
        v.image_end,
        v.new_line,
        v.mask,
    ]
    numbers = list(range(v.number_base, v.number_base + v.n_numbers))
    visual = list(range(v.visual_offset, v.visual_offset + v.codebook_size))
    ids = list(range(v.text_size)) + specials + numbers + visual
    assert sorted(ids) == list(range(v.size))  # every id used exactly once
    assert Vocab.from_dict(v.to_dict()) == v and Vocab.from_dict(OFFICIAL.to_dict()) == OFFICIAL


def test_prompt_template_is_the_official_one():
    text = prompt_text("a red ball", width=672, height=384, duration=2, fps=12)
    assert text == (
        "Generate a video with a resolution of 672x384, consisting of 24 frames at 12 frames per "
        "second, according to the following prompt:\n a red ball"
    )


@pytest.mark.parametrize("vocab", [OFFICIAL, COMPACT], ids=["official", "compact"])
def test_serialize_parse_round_trip(vocab):
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, vocab.codebook_size, (3, 4, 8), generator=g)
    ids = serialize(vocab, [5, 6, 7], codes, duration=2, fps=8)
    assert len(ids) == 5 + 3 + 3 * frame_length(4, 8) + 2
    parsed = parse(vocab, ids)
    assert parsed.text_ids == [5, 6, 7] and (parsed.duration, parsed.fps) == (2, 8)
    assert torch.equal(parsed.codes, codes)
    uncond = unconditional(vocab, ids)
    assert uncond[0] == vocab.video_start and parse(vocab, uncond).text_ids is None
    assert torch.equal(parse(vocab, serialize(vocab, None, codes, 2, 8)).codes, codes)


def test_official_frame_layout():
    """[8197][8804 + H/32][8804 + W/32] rows of (codes, 8803) [8196]; header height first (§2.3)."""
    codes = torch.arange(4 * 12).view(4, 12)
    ids = frame_ids(OFFICIAL, codes)
    assert ids[:3].tolist() == [8197, 8805, 8807] and ids[-1] == 8196
    body = ids[3:-1].view(4, 13)
    assert (body[:, -1] == 8803).all() and torch.equal(body[:, :-1], codes + 65536)
    assert torch.equal(ids[code_slots(4, 12)], codes.flatten() + 65536)
    masked = frame_ids(OFFICIAL, codes, masked=codes % 2 == 0)
    assert (masked[code_slots(4, 12)].view(4, 12)[codes % 2 == 0] == 9003).all()
    with pytest.raises(ArvideoError, match="multiple of 4"):
        frame_ids(OFFICIAL, torch.zeros(4, 6, dtype=torch.long))


def test_labels_and_padding():
    ids = serialize(COMPACT, [1, 2], torch.zeros(1, 2, 2, dtype=torch.long), 1, 1)
    labels = training_labels(COMPACT, ids)
    vs = int((ids == COMPACT.video_start).nonzero()[0])
    assert (labels[:vs] == IGNORE).all() and torch.equal(labels[vs:], ids[vs:])
    batch, batch_labels = pad_batch(COMPACT, [ids, ids[vs:]], [labels, labels[vs:]])
    assert batch.shape == (2, len(ids)) and (batch[1, len(ids) - vs :] == COMPACT.pad).all()
    assert (batch_labels[1, len(ids) - vs :] == IGNORE).all()


def _corrupt(ids, index, value):
    ids = ids.clone()
    ids[index] = value
    return ids


def test_parse_rejects_malformed_sequences():
    v = OFFICIAL
    ids = serialize(v, [11000], torch.zeros(2, 4, 4, dtype=torch.long), 2, 12)
    start = 1 + 1 + 1 + 3  # bos, text, sep, video header
    body = start + 3
    cases = [
        (_corrupt(ids, body + 1, v.mask), "MASK token"),
        (_corrupt(ids, body + 4, 65536), "expected new_line"),
        (_corrupt(ids, start + frame_length(4, 4) - 1, v.sep), "no image_end"),
        (_corrupt(ids, 0, 11000), r"\[bos\] text \[sep\]"),
        (_corrupt(ids, 1, v.video_start), "exactly one video_start"),
        (torch.cat([ids[:-2], torch.tensor([11000])]), "unexpected token 11000"),
        (ids[: start + 5], "no image_end"),
        (torch.cat([ids[:start], ids[-2:]]), "no frame"),
    ]
    second = start + frame_length(4, 4)
    cases.append(
        (
            torch.cat([ids[:second], frame_ids(v, torch.zeros(8, 4, dtype=torch.long)), ids[-2:]]),
            "frame 1 has size",
        )
    )
    for bad, message in cases:
        with pytest.raises(ArvideoError, match=message):
            parse(v, bad)


def test_structure_of_a_batch():
    """Frame index, in-frame flag, body coordinates for two differently laid out samples at once."""
    v = COMPACT
    a = serialize(v, [1, 2, 3], torch.zeros(2, 2, 3, dtype=torch.long), 1, 1)
    b = serialize(v, None, torch.zeros(1, 3, 2, dtype=torch.long), 1, 1)
    ids, _ = pad_batch(v, [a, b], [a, b])
    s = structure(ids, v)
    # sample a: [bos 1 2 3 sep] [vs d f] frame0 (3 + 2*4 + 1 = 12) frame1 [ve sep]
    f0, f1 = 8, 8 + 12
    assert s.in_frame[0].nonzero().flatten().tolist() == list(range(f0, f1 + 12))
    assert s.frame[0, f0:f1].unique().tolist() == [0] and s.frame[0, f1 : f1 + 12].unique().tolist() == [1]
    assert s.segment_end[0, f0] == f1 - 1 and s.segment_end[0, 3] == 3
    body = s.body[0].nonzero().flatten()
    assert len(body) == 2 * 2 * 4 and body[0] == f0 + 3
    assert s.row[0, body].tolist()[:8] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert s.col[0, body].tolist()[:8] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert s.first_body.tolist() == [f0 + 3, 3 + 3]
    # sample b: 3 rows of (2 codes + new-line) after [vs d f][image_start h w]
    assert s.body[1].sum() == 9 and s.col[1, 6:15].tolist() == [0, 1, 2] * 3
