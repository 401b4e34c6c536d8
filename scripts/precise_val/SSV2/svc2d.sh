#!/usr/bin/env bash
# SSV2 precise evaluation of svc2d_ssv2 (2 temporal x 3 spatial views, the field's protocol for SSV2;
# override with SEGMENTS / CROPS). Environment as in scripts/precise_val/eval.sh.
exec bash "$(dirname "$0")/../eval.sh" svc2d_ssv2 "${SEGMENTS:-2}" "${CROPS:-3}" "$@"
