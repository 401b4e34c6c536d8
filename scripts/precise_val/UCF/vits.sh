#!/usr/bin/env bash
# UCF precise evaluation of coded_vits_ucf (3 temporal x 3 spatial views, the field's protocol for UCF;
# override with SEGMENTS / CROPS). Environment as in scripts/precise_val/eval.sh.
exec bash "$(dirname "$0")/../eval.sh" coded_vits_ucf "${SEGMENTS:-3}" "${CROPS:-3}" "$@"
