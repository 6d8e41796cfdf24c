import time

import torch

from generalist_bench import load_model
from generalist_bench.evaluation.api import evaluate
from generalist_bench.evaluation.autoattack import compact

torch.set_num_threads(2)
m = load_model("fmnist-smallcnn-pgd_at_seed0", dataset="fashion_mnist", model_dir="model_zoo")
res = {True: [], False: []}
flags = {}
for rep in range(2):
    for reuse in (True, False):
        compact.FAB_REUSE_FORWARD = reuse
        t = time.perf_counter()
        r = evaluate(m, eps=0.1, attacks=["fab-t"], n_examples=100, batch_size=100, progress=False)
        res[reuse].append(time.perf_counter() - t)
        flags.setdefault(reuse, r.flags("fab-t"))
        st = r.attack_stats["fab-t"]
        print(rep, reuse, round(res[reuse][-1], 1), st["forward_images"], st["backward_images"], r.robust_acc,
              flush=True)
print("flags equal:", torch.equal(flags[True], flags[False]))
print({k: sorted(v) for k, v in res.items()})
