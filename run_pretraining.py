"""Masked video pretraining: VideoMAE / VideoMAEv2 and SnapPix coded-image -> video (``--task pretrain``),
and SnapPix's reconstruction study (``--task reconstruction``).

    python run_pretraining.py --model pretrain_coded_videomae_small_patch8_112 --coded_type decor_fix \
        --data_path pretrain.csv --data_root VIDEOS --output_dir OUT
    torchrun --nproc_per_node 4 run_pretraining.py --config configs/pretrain/coded_vits_snappix.yaml ...

Flags keep VideoMAEv2 / SnapPix names; ``--config FILE.yaml`` supplies defaults. The shared flags are in
``snappix/engine/args.py``, each method's own in its plug (``snappix/methods/``, picked by ``--task``).
"""

from __future__ import annotations

from torch.distributed.elastic.multiprocessing.errors import record

from snappix.engine.cli import user_errors
from snappix.methods import PRETRAINING
from snappix.methods import launch


def build_parser():
    return launch.build_parser("masked video pretraining (VideoMAE/VideoMAEv2, SnapPix coded MAE)", PRETRAINING,
                               default_task="pretrain")


@record  # under torchrun: the failing rank's error is shown in the launcher's summary
@user_errors  # inside @record: a user error is one line and exit status 2 on its rank (--debug: traceback)
def main(argv=None) -> dict:
    args = launch.parse(build_parser(), argv)
    return launch.run(args, PRETRAINING[args.task])


if __name__ == "__main__":
    main()
