"""Data layer: list files, video decoding, frame sampling, clip transforms, datasets.

Data flow: list file -> (path, label, extra) -> uint8 frames (T, H, W, C) -> frame indices
-> float clip (C, T, H, W) (+ data-side masks) -> DataLoader batch.
"""
