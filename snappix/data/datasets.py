"""Datasets: classification (train / validation / multi-view test) and masked pretraining.

Samples are dicts (collated by PyTorch's default collate, or by :func:`multiple_samples_collate`
when ``num_sample > 1``):

* :class:`VideoClsDataset`: ``video`` float32 ``(C, T, H, W)``, ``label`` int, ``index`` (row of the
  list), in test mode also ``segment`` / ``crop`` (the view), and ``substituted`` (bool).
* :class:`VideoPretrainDataset`: ``video``, ``encoder_mask`` / ``decoder_mask`` (bool token masks from
  pluggable generators, ``True`` = hidden / not reconstructed), ``index``, ``substituted``.

Bad videos never hang a run and never change it silently: a failing item is retried
``max_retries`` times, then replaced by a deterministic substitute (the next readable row), and
every failure is logged with path and reason to ``bad_videos.txt`` (in ``log_dir``), counted, and
reported in the sample (``substituted``). When at least ``min_bad`` (2) distinct videos failed and they
are more than ``max_bad_fraction`` of the distinct videos tried, counted over all DataLoader workers
(and at each epoch end over all ranks; the rule is in :mod:`snappix.data.bad_videos`),
:class:`TooManyBadVideos` stops the run naming the files.
"""

from __future__ import annotations

import logging
import random
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from . import sampling
from .bad_videos import BAD_VIDEOS_FILE, MIN_BAD, BadVideoTracker, TooManyBadVideos  # noqa: F401 (re-exported)
from .lists import ListEntry, check_files, read_list
from .transforms import EvalTransform, FinetuneTrainTransform, PretrainTransform
from .video import VideoDecodeError, backend_available, open_video

log = logging.getLogger(__name__)


def _pick(indices_fn: Callable, n: int, fps: float) -> list[np.ndarray]:
    """``indices_fn(n)``, or ``indices_fn(n, fps)`` when it says ``wants_fps = True`` (trimmed windows)."""
    return indices_fn(n, fps) if getattr(indices_fn, "wants_fps", False) else indices_fn(n)


class _VideoListDataset(Dataset):
    """Shared machinery: list reading, decoding, bounded retries and deterministic substitutes."""

    list_format = "cls"

    def __init__(self, data_path: str, data_root: str = "", video_backend: str | None = None,
                 max_retries: int = 1, max_substitutes: int = 10, max_bad_fraction: float = 0.01,
                 min_bad: int = MIN_BAD, log_dir: str | None = None, check_missing: bool = True,
                 entries: Sequence[ListEntry] | None = None, fallback_backend: str | None = "pyav",
                 cache_videos: bool = False, allow_outside_root: bool = False):
        self.data_path = data_path
        self.entries = (list(entries) if entries is not None
                        else read_list(data_path, self.list_format, data_root, allow_outside_root))
        if not self.entries:
            raise ValueError(f"{data_path}: the list has no rows")
        if check_missing:
            report = check_files(self.entries)
            if not report.ok:
                msg = f"{data_path}: {report.summary()}"
                if len(report.missing) > max_bad_fraction * len(self.entries):
                    raise FileNotFoundError(msg + f"\n(more than {max_bad_fraction:.1%} missing: is --data_root right?)")
                log.warning(msg)
        self.video_backend = video_backend
        self.fallback_backend = fallback_backend
        self._fell_back: set[str] = set()
        self.max_retries = max_retries
        self.max_substitutes = max_substitutes
        # shared-memory counters, created here so that every DataLoader worker forked later shares them
        self.tracker = BadVideoTracker(log_dir, max_bad_fraction, min_bad, num_rows=len(self.entries),
                                       paths=[e.path for e in self.entries])
        self.seed = 0
        self.epoch = 0
        # cache_videos: decode each video once, whole, and keep its uint8 frames in this process's memory
        # (each DataLoader worker keeps its own copy). Sampling and augmentation are unchanged: the same
        # indices are taken from the cached frames. Meant for small datasets (the quickstart, tests).
        self.cache_videos = cache_videos
        self._cache: dict[str, tuple[np.ndarray, float]] = {}  # path -> (frames, fps)
        self._colour_checked = torch.zeros(1, dtype=torch.uint8).share_memory_()  # one check per run

    def __len__(self) -> int:
        return len(self.entries)

    # -- randomness: a function of (seed, epoch, item) only ------------------------------------------
    def set_epoch(self, epoch: int, seed: int | None = None) -> None:
        """Make the augmentation of every item a function of ``(seed, epoch, item)``.

        Independent of the number of DataLoader workers, and replayed exactly after a resume.
        """
        self.epoch = int(epoch)
        if seed is not None:
            self.seed = int(seed)

    def _generators(self, item: int) -> tuple[np.random.Generator, random.Random, torch.Generator]:
        """numpy, python and torch generators for one item (sampling, masks, crops, erasing noise)."""
        np_rng = np.random.default_rng([self.seed, self.epoch, int(item)])
        seed = int(np_rng.integers(2 ** 62))
        return np_rng, random.Random(seed), torch.Generator().manual_seed(seed)

    # -- decoding --------------------------------------------------------------------------------
    def _read(self, entry: ListEntry, indices_fn: Callable[[int], list[np.ndarray]]) -> list[np.ndarray]:
        """Open ``entry``, choose indices with ``indices_fn(num_frames)``, decode; frames per index set.

        A video file the primary backend cannot decode is tried once with ``fallback_backend``
        (decord fails on some valid files, e.g. 48-pixel-wide H.264); success there is logged, not
        counted as a bad video.
        """
        if not entry.is_video_file:
            return self._check_colour(entry, self._decode(entry, "frames", indices_fn))
        backend = self.video_backend or ("decord" if backend_available("decord") else "pyav")
        try:
            return self._check_colour(entry, self._decode(entry, backend, indices_fn))
        except VideoDecodeError as exc:
            if not self.fallback_backend or self.fallback_backend == backend:
                raise
            frames = self._decode(entry, self.fallback_backend, indices_fn)
            if entry.path not in self._fell_back:
                self._fell_back.add(entry.path)
                log.warning("%s: decoded with %s after %s failed (%s)", entry.path, self.fallback_backend,
                            backend, exc.reason)
            return self._check_colour(entry, frames)

    def _check_colour(self, entry: ListEntry, clips: list[np.ndarray]) -> list[np.ndarray]:
        """Warn once per run when the first decoded clip is colour but is read as grey (``gray="first"``).

        SnapPix's preprocessed videos (``preprocess_data.py``) are grey: their three channels are equal.
        A raw colour video would silently be taken as linear grey (its channel 0); the first frame of
        the first clip a process decodes is checked (mean channel difference above 2 grey levels).
        Returns ``clips`` unchanged.
        """
        if getattr(self, "gray", None) != "first" or self._colour_checked[0] or not clips or not len(clips[0]):
            return clips
        self._colour_checked[0] = 1
        frame = np.asarray(clips[0][0])
        if frame.ndim == 3 and frame.shape[-1] == 3:
            f = frame.astype(np.int16)
            diff = max(np.abs(f[..., 0] - f[..., 1]).mean(), np.abs(f[..., 1] - f[..., 2]).mean())
            if diff > 2.0:
                log.warning("%s (%s:%d) is a colour video (its 3 channels differ), read here as linear grey "
                            "(channel 0): SnapPix models need grey videos made by preprocess_data.py. Convert the "
                            "dataset with `python preprocess_data.py IN OUT` and pass --data_root OUT (warned once)",
                            entry.path, self.data_path, entry.line_no)
        return clips

    def _decode(self, entry: ListEntry, backend: str, indices_fn) -> list[np.ndarray]:
        if self.cache_videos and entry.is_video_file:
            cached = self._cache.get(entry.path)
            if cached is None:
                with open_video(entry.path, backend=backend) as reader:
                    cached = (reader.get_frames(np.arange(reader.num_frames)), float(reader.fps))
                self._cache[entry.path] = cached
            frames, fps = cached
            return [frames[idx] for idx in _pick(indices_fn, len(frames), fps)]
        with open_video(entry.path, backend=backend) as reader:
            n = reader.num_frames
            offset = 0
            if not entry.is_video_file:  # a frame folder: rows give start_idx / total_frames
                offset = entry.start_idx if self.list_format == "pretrain" else 0
                n = min(entry.total_frames, reader.num_frames - offset)
                if n < 1:
                    raise VideoDecodeError(entry.path, f"frame folder has {reader.num_frames} frames, "
                                                       f"list says start {offset}, total {entry.total_frames}")
            return [reader.get_frames(idx + offset) for idx in _pick(indices_fn, n, float(reader.fps))]

    def _load_with_fallback(self, index: int, load: Callable[[ListEntry], dict]) -> dict:
        """Load item ``index``; on failure retry, then substitute the next readable row.

        The sample gets ``index`` (the row that loaded), ``requested`` (``index`` asked for) and
        ``substituted``. Each failure is logged to ``bad_videos.txt`` naming, as its substitute, the row
        that did load (never another unreadable one), or ``no substitute``.
        """
        candidate = index
        pending: list[tuple[str, str]] = []  # failures waiting for the row that replaces them
        try:
            for _ in range(self.max_substitutes + 1):
                entry = self.entries[candidate]
                if not self.tracker.is_bad(candidate):
                    self.tracker.tried(candidate)
                    reason = ""
                    for _ in range(self.max_retries + 1):
                        try:
                            sample = load(entry)
                        except VideoDecodeError as exc:
                            reason = exc.reason
                        except (IndexError, OSError, ValueError) as exc:
                            reason = f"{type(exc).__name__}: {exc}"
                        else:
                            for path, why in pending:
                                self.tracker.write(path, why, entry.path)
                            pending.clear()
                            sample.update(index=candidate, requested=index, substituted=candidate != index)
                            return sample
                    pending.append((entry.path, reason.replace("\n", " ")))
                    self.tracker.fail(entry.path, reason.replace("\n", " "), row=candidate)
                    self.tracker.check()
                candidate = (candidate + 1) % len(self.entries)
        finally:
            for path, why in pending:  # no row loaded (or the run stops): said so in the log
                self.tracker.write(path, why, None)
        raise TooManyBadVideos(f"{self.data_path}: no readable video found among rows {index}..{candidate} "
                               f"after {self.max_substitutes} substitutes (see {self.tracker.log_path})")

    def describe_item(self, item: int) -> str:
        """``path (list:line)`` of the video behind DataLoader item ``item`` (for error reports)."""
        index = int(item) // max(getattr(self, "num_views", 1), 1)
        entry = self.entries[index]
        return f"{entry.path} ({self.data_path}:{entry.line_no})"

    @property
    def num_bad(self) -> int:
        """Distinct videos that failed so far, over all DataLoader workers of this process."""
        return self.tracker.num_bad

    def bad_video_state(self) -> torch.Tensor:
        """The shared ``(2, rows)`` uint8 tried / failed flags (see :mod:`snappix.data.bad_videos`)."""
        return self.tracker.state


class VideoClsDataset(_VideoListDataset):
    """Classification dataset over a ``path label`` list (VideoMAE / SnapPix ``VideoClsDataset``), or a
    regression dataset over a ``path target`` list (``list_format="reg"``: samples carry a float32
    ``target`` instead of ``label``).

    Modes:
        * ``train``: random clip (``sampling='dense'``: ``num_frames x sampling_rate`` window, or
          ``'segment'``: TSN), :class:`FinetuneTrainTransform`; ``num_sample`` augmented clips per
          video (repeated augmentation) stacked as ``video (num_sample, C, T, H, W)``. As in VideoMAE,
          the clip's frames are sampled and decoded once and augmented ``num_sample`` times, each view
          with its own crop / RandAugment / flip / erasing draw.
        * ``validation``: one view: centred dense window (segment middles), centre crop.
        * ``test``: ``test_num_segment x test_num_crop`` views per video; ``len`` = videos x views;
          each sample carries ``index`` (the list row), ``segment`` and ``crop``.

    Args:
        gray: ``"first"`` (SnapPix grey videos, channel 0), ``"mean"``/``"luma"``, or ``None`` (RGB).
        aa, reprob, flip: RandAugment policy, random-erasing probability, horizontal flip (off for SSV2).
        crop_scale, crop_ratio: area fraction and aspect-ratio ranges of the training random resized crop
            (VideoMAE: (0.08, 1) and (3/4, 4/3)).
        mean, std: optional normalisation in the dataset (SnapPix normalises after the sensor instead).
        list_format: ``"cls"`` (``label``) or ``"reg"`` (``target``), see :mod:`snappix.data.lists`.

    Raises:
        ValueError: bad mode/sampling/list_format; ListFormatError: malformed list row; FileNotFoundError: too
        many listed files missing.
    """

    list_format = "cls"

    def __init__(self, data_path: str, data_root: str = "", mode: str = "train", num_frames: int = 16,
                 sampling_rate: int = 4, sampling: str = "dense", input_size: int = 112,
                 short_side_size: int = 112, num_sample: int = 1, test_num_segment: int = 5,
                 test_num_crop: int = 3, aa: str | None = "rand-m7-n4-mstd0.5-inc1", reprob: float = 0.25,
                 flip: bool = True, gray: str | None = "first", mean=None, std=None, dense_style: str = "videomae",
                 crop_scale: tuple[float, float] = (0.08, 1.0),
                 crop_ratio: tuple[float, float] = (3 / 4, 4 / 3), list_format: str = "cls", **kwargs):
        if list_format not in ("cls", "reg"):
            raise ValueError(f"list_format must be 'cls' or 'reg', got {list_format!r}")
        self.list_format = list_format
        if mode not in ("train", "validation", "test"):
            raise ValueError(f"mode must be train, validation or test, got {mode!r}")
        if sampling not in ("dense", "segment"):
            raise ValueError(f"sampling must be 'dense' or 'segment', got {sampling!r}")
        super().__init__(data_path, data_root, **kwargs)
        self.gray = gray
        self.mode, self.num_frames, self.sampling_rate, self.sampling = mode, num_frames, sampling_rate, sampling
        self.num_sample = num_sample if mode == "train" else 1
        self.test_num_segment = test_num_segment if mode == "test" else 1
        self.test_num_crop = test_num_crop if mode == "test" else 1
        self.dense_style = dense_style
        if mode == "train":
            self.transform = FinetuneTrainTransform(input_size, aa=aa, reprob=reprob, flip=flip, gray=gray,
                                                    mean=mean, std=std, scale=tuple(crop_scale),
                                                    ratio=tuple(crop_ratio))
        else:
            self.transform = EvalTransform(input_size, short_side_size, gray=gray, mean=mean, std=std)

    @property
    def num_views(self) -> int:
        return self.test_num_segment * self.test_num_crop

    def __len__(self) -> int:
        return len(self.entries) * self.num_views

    def _indices(self, n: int, segment: int, np_rng) -> np.ndarray:
        if self.sampling == "segment":
            return sampling.segment_indices(n, self.num_frames, train=self.mode == "train", rng=np_rng,
                                            view=segment, num_views=self.test_num_segment)
        if self.mode == "test":
            return sampling.multiview_dense_indices(n, self.num_frames, self.sampling_rate,
                                                    self.test_num_segment)[segment]
        return sampling.dense_clip_indices(n, self.num_frames, self.sampling_rate, train=self.mode == "train",
                                           rng=np_rng, style=self.dense_style)

    def __getitem__(self, item: int) -> dict:
        index, view = divmod(item, self.num_views)
        segment, crop = divmod(view, self.test_num_crop)
        np_rng, py_rng, torch_rng = self._generators(item)

        def load(entry: ListEntry) -> dict:
            return {"video": self._clip(entry, lambda n: [self._indices(n, segment, np_rng)], crop, py_rng,
                                        torch_rng), **self._target(entry)}

        sample = self._load_with_fallback(index, load)
        if self.mode == "test":
            sample.update(segment=segment, crop=crop)
        return sample

    def _target(self, entry: ListEntry) -> dict:
        """``{"label": int}`` or, for ``reg`` lists, ``{"target": float32 tensor}``."""
        reg = self.list_format == "reg"
        value = entry.target if reg else entry.label
        if value is None:
            raise ValueError(f"{self.data_path}:{entry.line_no}: row has no {'target' if reg else 'label'}")
        return {"target": torch.tensor(value, dtype=torch.float32)} if reg else {"label": value}

    def _clip(self, entry: ListEntry, indices_fn, crop: int, py_rng, torch_rng) -> torch.Tensor:
        """Decode the frames ``indices_fn`` picks and transform them (``num_sample`` times in training:
        repeated augmentation, one decode)."""
        frames = self._read(entry, indices_fn)[0]
        if self.mode != "train":
            return self.transform(frames, crop_idx=crop, num_crop=self.test_num_crop)
        videos = [self.transform(frames, rng=py_rng, generator=torch_rng) for _ in range(self.num_sample)]
        return torch.stack(videos) if self.num_sample > 1 else videos[0]


#: clip sampling of :class:`VideoPretrainDataset` (``run_pretraining.py --sampling``)
PRETRAIN_SAMPLINGS = ("snappix", "dense", "sparse")


class VideoPretrainDataset(_VideoListDataset):
    """Masked-pretraining dataset over a ``path start_idx total_frames`` list (VideoMAEv2 / SnapPix).

    Each sample: ``video`` float32 ``(C, T, input_size, input_size)`` from :class:`PretrainTransform`
    (or ``(num_sample, C, T, H, W)``: repeated augmentation, VideoMAEv2's ``num_sample``: one clip
    sampled and decoded once, then ``num_sample`` independent crops and masks of it), plus ``encoder_mask`` / ``decoder_mask`` from the given
    generators (callables ``rng -> bool array``; omitted when ``None``). An encoder generator with
    ``needs_clip = True`` (saliency masking) is called as ``gen(rng, clip=context)`` with the transformed
    clip, the sampled frame indices (into the whole video / frame folder), the list row's paths and the
    crop (see :mod:`snappix.masking.saliency`); its errors are not treated as bad videos.

    Args:
        sampling: ``"snappix"`` (HybridVideoMAE clip, the default), ``"dense"`` or ``"sparse"`` (one frame from
            each of ``num_frames`` equal segments of the whole video, TSN; VideoMamba's masked pretraining).
        ssv2_sampling_rate: SnapPix's SSV2 override made explicit (``2`` in SnapPix): paths
            containing ``ssv2_processed`` / ``SomethingV2`` use it instead of ``sampling_rate``.
        train: random clip offsets (``False``: deterministic validation clips).
    """

    list_format = "pretrain"

    def __init__(self, data_path: str, data_root: str = "", num_frames: int = 16, sampling_rate: int = 4,
                 input_size: int = 112, sampling: str = "snappix", ssv2_sampling_rate: int | None = None,
                 encoder_mask: Callable | None = None, decoder_mask: Callable | None = None,
                 num_sample: int = 1, train: bool = True, gray: str | None = "first",
                 scales: Sequence[float] = (1, .875, .75, .66), mean=None, std=None, **kwargs):
        if sampling not in PRETRAIN_SAMPLINGS:
            raise ValueError(f"sampling must be one of {PRETRAIN_SAMPLINGS}, got {sampling!r}")
        super().__init__(data_path, data_root, **kwargs)
        self.gray = gray
        self.num_frames, self.sampling_rate, self.sampling = num_frames, sampling_rate, sampling
        self.ssv2_sampling_rate = ssv2_sampling_rate
        self.encoder_mask, self.decoder_mask = encoder_mask, decoder_mask
        self.num_sample, self.train = num_sample, train
        self.transform = PretrainTransform(input_size, scales, gray=gray, mean=mean, std=std)

    def _indices(self, entry: ListEntry, n: int, np_rng) -> np.ndarray:
        rate = sampling.sampling_rate_for_path(entry.rel_path, self.sampling_rate, self.ssv2_sampling_rate)
        if self.sampling == "snappix":
            return sampling.snappix_pretrain_indices(n, self.num_frames, rate, train=self.train, rng=np_rng)
        if self.sampling == "sparse":  # the sampling rate does not apply: segments span the whole video
            return sampling.segment_indices(n, self.num_frames, train=self.train, rng=np_rng)
        return sampling.dense_clip_indices(n, self.num_frames, rate, train=self.train, rng=np_rng)

    def __getitem__(self, index: int) -> dict:
        np_rng, py_rng, _ = self._generators(index)

        def load(entry: ListEntry) -> dict:
            sampled: list[np.ndarray] = []

            def indices_fn(n: int) -> list[np.ndarray]:
                sampled[:] = [self._indices(entry, n, np_rng)]
                return sampled

            frames = self._read(entry, indices_fn)[0]  # repeated augmentation: decoded once
            idx = sampled[0]
            offset = 0 if entry.is_video_file else entry.start_idx
            samples = []
            for _ in range(self.num_sample):
                params: dict = {}
                s = {"video": self.transform(frames, rng=py_rng, params_out=params)}
                if self.encoder_mask is not None and getattr(self.encoder_mask, "needs_clip", False):
                    context = dict(video=s["video"], frame_indices=np.asarray(idx) + offset, rel_path=entry.rel_path,
                                   path=entry.path, crop=params.get("crop"), frame_size=params.get("frame_size"))
                    s["encoder_mask"] = torch.from_numpy(self.encoder_mask(np_rng, clip=context))
                elif self.encoder_mask is not None:
                    s["encoder_mask"] = torch.from_numpy(self.encoder_mask(np_rng))
                if self.decoder_mask is not None:
                    s["decoder_mask"] = torch.from_numpy(self.decoder_mask(np_rng))
                samples.append(s)
            if self.num_sample == 1:
                return samples[0]
            return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}

        return self._load_with_fallback(index, load)


def multiple_samples_collate(batch: Sequence[dict]) -> dict:
    """Collate for repeated augmentation: tensors ``(num_sample, ...)`` per video -> ``(B * num_sample, ...)``.

    Per-video scalars (``label``, ``index``, ``substituted``) are repeated ``num_sample`` times.
    """
    out = {}
    num_sample = batch[0]["video"].shape[0]
    for key in batch[0]:
        values = [b[key] for b in batch]
        if isinstance(values[0], torch.Tensor) and values[0].dim() > 0 and values[0].shape[0] == num_sample:
            out[key] = torch.cat(values)
        else:
            out[key] = torch.as_tensor(values).repeat_interleave(num_sample)
    return out
