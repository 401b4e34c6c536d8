#!/usr/bin/env bash
# K400 precise evaluation of svc2d_k400 (5 temporal x 3 spatial views, the field's protocol for K400;
# override with SEGMENTS / CROPS). Environment as in scripts/precise_val/eval.sh.
exec bash "$(dirname "$0")/../eval.sh" svc2d_k400 "${SEGMENTS:-5}" "${CROPS:-3}" "$@"
