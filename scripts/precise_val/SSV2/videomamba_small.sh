#!/usr/bin/env bash
# SSV2 precise evaluation of videomamba_small_ssv2 (2 temporal x 3 spatial views, VideoMamba's SSV2 test;
# override with SEGMENTS / CROPS). Environment as in scripts/precise_val/eval.sh.
exec bash "$(dirname "$0")/../eval.sh" videomamba_small_ssv2 "${SEGMENTS:-2}" "${CROPS:-3}" "$@"
