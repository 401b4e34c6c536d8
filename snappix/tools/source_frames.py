"""How many frames a source video should have, to tell a complete conversion from a partial one.

``preprocess_data.py`` decodes with OpenCV, which stops at the first frame it cannot deliver: a file that
opens but breaks mid-stream used to be converted to its first frames and reported as converted. The
container's own frame count (MP4 ``stts`` / AVI index, read by PyAV as ``stream.frames``) is compared with
the frames decoded. Containers without a stored count (WebM/Matroska) give ``None``: they cannot be
checked this way, and no estimate from duration x fps is used (variable-frame-rate files would look
partial).
"""

from __future__ import annotations

import os

__all__ = ["PARTIAL_TOLERANCE", "header_frame_count", "is_partial"]

#: frames a decoder may drop against the header (edit lists, a final B-frame) before a video is partial
PARTIAL_TOLERANCE = 1


def header_frame_count(path: str | os.PathLike) -> int | None:
    """The frame count stored in the container of ``path``'s first video stream, or ``None`` when the
    container stores none or cannot be opened by PyAV."""
    try:
        import av

        with av.open(os.fspath(path)) as container:
            frames = int(container.streams.video[0].frames or 0)
    except Exception:  # noqa: BLE001 - a probe: any failure means "unknown"
        return None
    return frames if frames > 0 else None


def is_partial(decoded: int, expected: int | None) -> bool:
    """True when ``decoded`` frames fall short of the header's ``expected`` by more than the tolerance."""
    return expected is not None and decoded < expected - PARTIAL_TOLERANCE
