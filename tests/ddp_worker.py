"""Run by tests/test_distributed.py under torchrun: trains a tiny Generalist with DDP (gloo) and checks
that the global learner and every base learner are identical on every rank."""

import hashlib
import json
import sys

import torch
import torch.distributed as dist

from generalist_bench.presets import get_preset
from generalist_bench.trainers import Trainer


def digest(module) -> str:
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(out: str) -> None:
    cfg = get_preset("fmnist-smallcnn-generalist").with_overrides([
        "data.train_subset=256", "train.batch_size=32", "train.epochs=2", "train.selection.n_val=32",
        "train.selection.attack_steps=1", "train.merge.warmup_epochs=1", "train.merge.redistribute_every=1",
        "train.learners.1.attack.steps=1"]).validate()
    trainer = Trainer(cfg, out, progress=False)
    trainer.run()
    mine = [digest(trainer.trained_model)] + [digest(ln.model) for ln in trainer.learners]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    if dist.get_rank() == 0:
        with open(f"{out}/ranks.json", "w") as f:
            json.dump({"world_size": dist.get_world_size(), "digests": gathered,
                       "steps": trainer.merge.step}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1])
