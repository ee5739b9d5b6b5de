"""Raw media for processor-based families: decode, then sample the way each family expects.

Decoding uses the optional ``media`` extra: PyAV (FFmpeg) for video and
audio containers, Pillow for images and frame folders.  What each family
is fed:

- **Qwen2.5-Omni** — video frames sampled at 2 fps (an even number of frames,
  at least 4, as qwen-omni-utils does), audio as 16 kHz mono float32; with
  ``use_audio_in_video`` the audio is the clip's own track.
- **LLaVA** — one image: the image file, or the middle frame of the video.

Samples read from annotation files keep their media paths in
``sample.extra`` (``video_path``, ``audio_path``, ``image_path``); their
``visual`` / ``audio`` arrays count *copies*: one row means "the clip's media
once", zero rows "left out" (PAI's visual-free branch), k rows "k copies"
(audio duplication), see :func:`media_copies`.

Without torchvision, transformers cannot build Qwen2-VL's video processor;
:class:`QwenVideoProcessor` is a small numpy stand-in with the same output
layout (resize by ``smart_resize``, normalise, 2x2x2 patchify).
"""

from __future__ import annotations

import math
import wave
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AUDIO_RATE = 16000
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".mpg", ".mpeg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class MediaError(ValueError):
    """A media file that is missing or cannot be decoded."""


@dataclass
class Video:
    """Decoded RGB frames ``[T, H, W, 3]`` (uint8) and their frame rate."""

    frames: np.ndarray
    fps: float


def _av():
    try:
        import av
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("decoding video/audio needs PyAV: pip install 'modbias[media]' (or pip install av)") from err
    return av


def _pil():
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover
        raise ImportError("reading images needs Pillow: pip install 'modbias[media]' (or pip install pillow)") from err
    return Image


def _existing(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise MediaError(f"media file {path} does not exist")
    return path


def _is_still(path: Path) -> bool:
    """Whether ``path`` is an image or a folder of images (read with Pillow, not decoded as a stream)."""
    return path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES


@contextmanager
def _video_stream(path: Path):
    """Open a video file and yield ``(container, its first video stream)``; any FFmpeg error raised
    while the block decodes becomes a :class:`MediaError` naming the file."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path} has no video stream")
            yield container, container.streams.video[0]
    except av.error.FFmpegError as err:
        raise MediaError(f"cannot decode video {path}: {err}") from err


def load_image(path) -> np.ndarray:
    """An image as RGB ``[H, W, 3]`` uint8.

    Args:
        path: an image file.

    Returns:
        uint8 ``[H, W, 3]``.
    """
    path = _existing(path)
    with _pil().open(path) as image:
        return np.asarray(image.convert("RGB"))


def load_video(path, fps: float = 25.0) -> Video:
    """All frames of a video file, or of a folder of images (DFEW-style; ``fps`` gives their rate).

    Args:
        path: a video file, an image, or a folder of images.
        fps: the frame rate of an image folder (and of a stream that states none).

    Returns:
        A :class:`Video`: uint8 ``[T, H, W, 3]`` and its frame rate.
    """
    path = _existing(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise MediaError(f"frame folder {path} holds no images")
        return Video(np.stack([load_image(f) for f in files]), float(fps))
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return Video(load_image(path)[None], float(fps))
    with _video_stream(path) as (container, stream):
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        rate = float(stream.average_rate or stream.guessed_rate or fps)
    if not frames:
        raise MediaError(f"{path} has no decodable frames")
    return Video(np.stack(frames), rate)


def load_audio(path, sampling_rate: int = AUDIO_RATE) -> np.ndarray:
    """Mono float32 audio at ``sampling_rate`` from an audio file or a video's audio track.

    Args:
        path: an audio or video file.
        sampling_rate: the rate to resample to (Hz).

    Returns:
        float32 ``[n_samples]``.
    """
    path = _existing(path)
    av = _av()
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)
    chunks = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path} has no audio stream")
            for frame in container.decode(container.streams.audio[0]):
                chunks.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(frame))
            chunks.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(None))
    except av.error.FFmpegError as err:
        raise MediaError(f"cannot decode audio {path}: {err}") from err
    if not chunks:
        raise MediaError(f"{path} has an empty audio stream")
    return np.concatenate(chunks).astype(np.float32)


def first_frame(path) -> np.ndarray:
    """The first frame ``[H, W, 3]`` of a video file, an image, or a folder of images (Emotion-LLaMA's input).

    Args:
        path: a video file, an image, or a folder of images.

    Returns:
        uint8 ``[H, W, 3]`` (only that frame is decoded).
    """
    path = _existing(path)
    if _is_still(path):
        return load_video(path).frames[0]
    with _video_stream(path) as (container, stream):
        for frame in container.decode(stream):
            return frame.to_ndarray(format="rgb24")
    raise MediaError(f"{path} has no decodable frames")


def segment_midpoints(n_frames: int, count: int) -> np.ndarray:
    """HumanOmni's uniform sampling: the rounded midpoints of ``count`` equal segments of ``[0, n_frames - 1]``.

    Args:
        n_frames: the clip's frame count.
        count: how many frames to take.

    Returns:
        int64 ``[count]`` frame indices.
    """
    if n_frames < 1:
        raise MediaError("video has no frames")
    size = (n_frames - 1) / count
    return np.round(size * (np.arange(count) + 0.5) + 1e-6).astype(np.int64)


def load_frames(path, count: int) -> np.ndarray:
    """``count`` frames ``[count, H, W, 3]`` at :func:`segment_midpoints`, decoding the file once
    and keeping only those frames.

    Args:
        path: a video file, an image, or a folder of images.
        count: how many frames.

    Returns:
        uint8 ``[count, H, W, 3]`` (an index past the last decodable frame repeats that frame).
    """
    path = _existing(path)
    if _is_still(path):
        frames = load_video(path).frames
        return frames[segment_midpoints(len(frames), count)]
    with _video_stream(path) as (container, stream):
        total = stream.frames or sum(1 for _ in container.decode(stream))
        wanted = segment_midpoints(total, count)
        container.seek(0)
        kept, wanted_set = {}, set(wanted.tolist())
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted_set:
                kept[i] = frame.to_ndarray(format="rgb24")
            if i >= wanted.max():
                break
    if not kept:
        raise MediaError(f"{path} has no decodable frames")
    last = kept[max(kept)]
    return np.stack([kept.get(int(i), last) for i in wanted])


def fps_frame_indices(n_frames: int, video_fps: float, fps: float = 2.0, factor: int = 2,
                      min_frames: int = 4, max_frames: int = 768) -> np.ndarray:
    """Frame indices sampled at ``fps`` (qwen-omni-utils' ``smart_nframes``): a multiple of
    ``factor`` frames, at least ``min_frames`` when the clip has them, evenly spaced.

    Args:
        n_frames: the clip's frame count.
        video_fps: the clip's frame rate.
        fps: the sampling rate wanted.
        factor: the frame count is a multiple of this (Qwen's temporal patch).
        min_frames: the fewest frames.
        max_frames: the most frames.

    Returns:
        int64 ``[count]`` frame indices.
    """
    if n_frames < 1:
        raise MediaError("video has no frames")
    lo = math.ceil(min_frames / factor) * factor
    hi = max(factor, math.floor(min(max_frames, n_frames) / factor) * factor)
    wanted = n_frames / max(video_fps, 1e-6) * fps
    count = min(max(wanted, lo), hi)
    count = max(factor, round(count / factor) * factor)
    return np.linspace(0, n_frames - 1, count).round().astype(np.int64)


def sample_video(video: Video, fps: float = 2.0, factor: int = 2, min_frames: int = 4,
                 max_frames: int = 768) -> Video:
    """The frames a Qwen-style model sees, with the effective frame rate (which sets seconds per grid).

    Args:
        video: the decoded clip.
        fps: the sampling rate wanted.
        factor: the frame count is a multiple of this.
        min_frames: the fewest frames.
        max_frames: the most frames.

    Returns:
        A :class:`Video` of the sampled frames and their effective rate.
    """
    index = fps_frame_indices(len(video.frames), video.fps, fps, factor, min_frames, max_frames)
    effective = len(index) / max(len(video.frames), 1) * video.fps
    return Video(video.frames[index], effective)


def middle_frame(video: Video) -> np.ndarray:
    """The frame a single-image model (LLaVA) sees.

    Args:
        video: the decoded clip.

    Returns:
        uint8 ``[H, W, 3]``.
    """
    return video.frames[len(video.frames) // 2]


def media_copies(sample, modality: str) -> int:
    """How many copies of the clip's ``modality`` media the (possibly intervened) sample asks for.

    ``extra["rows"][modality]`` records the rows the reader gave the modality (default 1);
    ``np.repeat`` (audio duplication) multiplies them, PAI's visual-free branch empties them.

    Args:
        sample: the sample.
        modality: ``"visual"`` or ``"audio"``.

    Returns:
        The number of copies (0: left out).
    """
    rows = getattr(sample, modality).shape[0]
    base = int(sample.extra.get("rows", {}).get(modality, 1)) or 1
    return rows // base


CACHE_SIZE = 16


def cache_key(sample) -> tuple | None:
    """What determines a processor-based family's inputs for ``sample`` (media files, copies, subtitle);
    ``None`` (do not cache) when the media are in-memory arrays.

    Args:
        sample: the sample.

    Returns:
        ``(id, subtitle, visual copies, audio copies, (video_path, audio_path, image_path))`` or ``None``.
    """
    if any(k in sample.extra for k in ("video", "audio", "image")):
        return None
    paths = tuple(sample.extra.get(k) for k in ("video_path", "audio_path", "image_path"))
    return (sample.id, sample.subtitle, media_copies(sample, "visual"), media_copies(sample, "audio"), paths)


def cached(store: dict, key, compute):
    """``compute()``, kept in ``store`` under ``key`` with the last :data:`CACHE_SIZE` results (oldest dropped).

    Args:
        store: the dict the results live in (insertion order is age).
        key: a hashable key such as :func:`cache_key`'s; ``None`` computes without caching.
        compute: a function of no arguments making the value.

    Returns:
        The stored or freshly computed value.
    """
    if key is None:
        return compute()
    if key not in store:
        store[key] = compute()
        while len(store) > CACHE_SIZE:
            store.pop(next(iter(store)))
    return store[key]


# -- writing small media (tests, examples) ------------------------------------------------------
def write_wav(path, audio: np.ndarray, sampling_rate: int = AUDIO_RATE) -> Path:
    """16-bit PCM mono WAV (standard library only).

    Args:
        path: the file to write.
        audio: float ``[n_samples]`` in [-1, 1] (clipped).
        sampling_rate: Hz.

    Returns:
        ``path``.
    """
    path = Path(path)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sampling_rate)
        out.writeframes(pcm.tobytes())
    return path


def write_image(path, frame: np.ndarray) -> Path:
    """An image file (format from the suffix) of one frame.

    Args:
        path: the file to write.
        frame: ``[H, W, 3]`` values in 0-255.

    Returns:
        ``path``.
    """
    path = Path(path)
    _pil().fromarray(np.asarray(frame, dtype=np.uint8)).save(path)
    return path


def write_video(path, frames: np.ndarray, fps: int = 10, audio: np.ndarray | None = None,
                sampling_rate: int = AUDIO_RATE) -> Path:
    """An MPEG-4 video of ``frames`` ``[T, H, W, 3]`` (even H, W), with an AAC track if ``audio`` is given.

    Args:
        path: the file to write.
        frames: uint8 ``[T, H, W, 3]``.
        fps: the frame rate.
        audio: float ``[n_samples]`` mono, or ``None`` for no audio track.
        sampling_rate: the audio's rate (Hz).

    Returns:
        ``path``.
    """
    av = _av()
    path = Path(path)
    with av.open(str(path), "w") as container:
        vstream = container.add_stream("mpeg4", rate=fps)
        vstream.height, vstream.width = frames.shape[1], frames.shape[2]
        vstream.pix_fmt = "yuv420p"
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=sampling_rate, layout="mono")
        for frame in frames:
            for packet in vstream.encode(av.VideoFrame.from_ndarray(np.asarray(frame, np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            samples = np.asarray(audio, np.float32)[None]
            chunk = 1024
            for start in range(0, samples.shape[1], chunk):
                piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + chunk]),
                                                   format="fltp", layout="mono")
                piece.sample_rate = sampling_rate
                piece.pts = start
                for packet in astream.encode(piece):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path


# -- Qwen2-VL video patches without torchvision ------------------------------------------------
def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's resize rule: sides divisible by ``factor``, area within [min_pixels, max_pixels].

    Args:
        height: the frame's height.
        width: the frame's width.
        factor: patch size × merge size.
        min_pixels: the smallest area.
        max_pixels: the largest area.

    Returns:
        ``(height, width)`` after resizing.
    """
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return max(h_bar, factor), max(w_bar, factor)


def _video_processor_base():
    from transformers.video_processing_utils import VideoProcessorMixin

    return VideoProcessorMixin


class QwenVideoProcessor(_video_processor_base()):
    """numpy stand-in for ``Qwen2VLVideoProcessor`` (used only when torchvision is missing).

    Same output layout: ``pixel_values_videos`` ``[t·h·w, 3·T·p·p]`` and ``video_grid_thw``.
    Resizing uses Pillow's bicubic filter, so values differ slightly from torchvision's.
    """

    model_input_names = ["pixel_values_videos", "video_grid_thw"]

    def __init__(self, min_pixels: int = 128 * 28 * 28, max_pixels: int = 768 * 28 * 28, patch_size: int = 14,
                 temporal_patch_size: int = 2, merge_size: int = 2, image_mean=(0.48145466, 0.4578275, 0.40821073),
                 image_std=(0.26862954, 0.26130258, 0.27577711), **_):
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self.patch_size, self.temporal_patch_size, self.merge_size = patch_size, temporal_patch_size, merge_size
        self.image_mean, self.image_std = np.asarray(image_mean, np.float32), np.asarray(image_std, np.float32)

    @classmethod
    def from_config_dict(cls, config: dict) -> "QwenVideoProcessor":
        """The processor a ``preprocessor_config.json`` / ``video_preprocessor_config.json`` describes.

        Args:
            config: the JSON's dict (``min_pixels``/``max_pixels`` or ``size``, patch and merge sizes, mean, std).

        Returns:
            A :class:`QwenVideoProcessor`.
        """
        size = config.get("size") or {}
        return cls(min_pixels=config.get("min_pixels", size.get("shortest_edge", 128 * 28 * 28)),
                   max_pixels=config.get("max_pixels", size.get("longest_edge", 768 * 28 * 28)),
                   **{k: config[k] for k in ("patch_size", "temporal_patch_size", "merge_size", "image_mean",
                                             "image_std") if k in config})

    def __call__(self, videos, return_tensors=None, **_):
        from transformers.feature_extraction_utils import BatchFeature

        videos = [videos] if isinstance(videos, np.ndarray) and videos.ndim == 4 else list(videos)
        patches, grids = [], []
        for video in videos:
            flat, grid = self.patchify(self.resize_normalise(np.asarray(video)))
            patches.append(flat)
            grids.append(grid)
        return BatchFeature({"pixel_values_videos": np.concatenate(patches), "video_grid_thw": np.array(grids)},
                            tensor_type=return_tensors)

    def resize_normalise(self, frames: np.ndarray) -> np.ndarray:
        """``[T, H, W, 3]`` uint8 → ``[T, 3, H', W']`` float32, normalised.

        Args:
            frames: uint8 ``[T, H, W, 3]``.

        Returns:
            float32 ``[T, 3, H', W']`` with ``(H', W')`` from :func:`smart_resize`.
        """
        Image = _pil()
        height, width = frames.shape[1:3]
        factor = self.patch_size * self.merge_size
        new_h, new_w = smart_resize(height, width, factor, self.min_pixels, self.max_pixels)
        resized = np.stack([np.asarray(Image.fromarray(f).resize((new_w, new_h), Image.BICUBIC)) for f in frames])
        out = (resized.astype(np.float32) / 255.0 - self.image_mean) / self.image_std
        return out.transpose(0, 3, 1, 2)

    def patchify(self, video: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Cut a clip into Qwen2-VL's flattened patches, padding the time axis by repeating the last frame.

        Args:
            video: float32 ``[T, 3, H, W]`` (``H``, ``W`` divisible by patch × merge size).

        Returns:
            ``(patches [t·h·w, 3·T_p·p·p], [t, h, w])`` with ``T_p`` the temporal patch size and the
            patches ordered merge block by merge block.
        """
        frames, channel, height, width = video.shape
        tps, ps, ms = self.temporal_patch_size, self.patch_size, self.merge_size
        if pad := -frames % tps:
            video = np.concatenate([video, np.repeat(video[-1:], pad, axis=0)])
            frames += pad
        gt, gh, gw = frames // tps, height // ps, width // ps
        patches = video.reshape(gt, tps, channel, gh // ms, ms, ps, gw // ms, ms, ps)
        patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return patches.reshape(gt * gh * gw, channel * tps * ps * ps), [gt, gh, gw]
