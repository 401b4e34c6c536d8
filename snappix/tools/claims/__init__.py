"""The claims tool: small, timed studies of SnapPix's claims on a CPU, written to one Markdown file.

    python -m snappix.tools.claims --study reconstruction|generalisation|all [--fast] [--work_dir outputs/claims]
                                   [--out_md docs/results/snappix_miniature.md] [--videos DIR] [--seed 0]

Each study is its own module with ``NAME``, ``run_study(work_dir, videos, fast, seed, log) -> dict`` and
``render(result, header) -> str``, registered in :data:`STUDIES`; it keeps its finished parts under
``work_dir/<study>/`` (:class:`snappix.tools.claims.report.Parts`) so a rerun resumes, and its Markdown
section (one per study) is rewritten in place, other sections kept (:func:`snappix.tools.claims.report.write_section`).
SnapPix: Lin et al., DAC'25, https://arxiv.org/abs/2504.04535.
"""
from __future__ import annotations

__all__ = ["STUDIES"]

#: study name -> module (imported on use); the order is the order of the sections in the Markdown file
STUDIES = {
    "reconstruction": "snappix.tools.claims.reconstruction",
    "generalisation": "snappix.tools.claims.generalisation",
}
