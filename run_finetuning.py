"""Finetuning and precise (multi-view) evaluation of video classifiers: SnapPix coded ViTs, video ViTs,
C3D and SVC2D on Kinetics, SSV2, UCF101, HMDB51, ... (VideoMAEv2 / SnapPix flags).

    python run_finetuning.py --model coded_vit_small_patch8_112 --data_set UCF101 --nb_classes 101 \
        --data_path LISTS_DIR --data_root VIDEOS --finetune PRETRAIN/checkpoint-299.pth --output_dir OUT
    python run_finetuning.py ... --eval                     # multi-view test of checkpoint-best.pth

``--data_path`` is a folder with ``train.csv`` / ``val.csv`` / ``test.csv`` (VideoMAE convention; test
falls back to val) or a single training list with ``--val_path`` / ``--test_path``. Training validates
one view per video every epoch and keeps ``checkpoint-best.pth``; ``--test_best`` (after training) and
``--eval`` run the full test: every video x ``--test_num_segment`` x ``--test_num_crop`` views, softmax
averaged per video, gathered across ranks in memory.
"""

from __future__ import annotations

from torch.distributed.elastic.multiprocessing.errors import record

from snappix.engine.cli import user_errors
from snappix.methods import FINETUNING
from snappix.methods import launch
from snappix.methods.classification import (DATASETS, FIELD_VIEWS, build_model, check_classes,  # noqa: F401
                                            make_dataset, resolve_lists)
from snappix.methods.classification_test import find_eval_checkpoint, run_test  # noqa: F401


def build_parser():
    return launch.build_parser("finetuning and multi-view evaluation of video classifiers", FINETUNING,
                               default_task="finetune")


@record  # under torchrun: the failing rank's error is shown in the launcher's summary
@user_errors  # inside @record: a user error is one line and exit status 2 on its rank (--debug: traceback)
def main(argv=None) -> dict:
    args = launch.parse(build_parser(), argv)
    return launch.run(args, FINETUNING[args.task])


if __name__ == "__main__":
    main()
