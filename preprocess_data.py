"""SnapPix preprocessing CLI: videos -> linear-intensity grey .mp4, short side 112 (see snappix/tools/preprocess.py)."""
from snappix.tools.preprocess_cli import main

if __name__ == "__main__":
    raise SystemExit(main())
