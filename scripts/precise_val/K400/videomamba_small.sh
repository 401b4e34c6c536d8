#!/usr/bin/env bash
# K400 precise evaluation of videomamba_small_k400 (4 temporal x 3 spatial views, VideoMamba's K400 test;
# override with SEGMENTS / CROPS). Environment as in scripts/precise_val/eval.sh.
exec bash "$(dirname "$0")/../eval.sh" videomamba_small_k400 "${SEGMENTS:-4}" "${CROPS:-3}" "$@"
