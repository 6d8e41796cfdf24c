"""One timed run of standard Linf Square (5,000 queries) on the first N Fashion-MNIST test points, printed as JSON.
Run it from the checkout whose engine is to be timed (its package is imported from the working directory):
  cd <checkout> && python <this file> MODEL.pt [N]
Used for benchmarks/tried/README.md (the engine as it is vs the patch applied in a second checkout)."""
import json
import sys
import time

import torch

import generalist_bench
from generalist_bench.evaluation.api import evaluate
from generalist_bench.models import model_for_dataset

torch.set_num_threads(2)
path, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100
model = model_for_dataset("small_cnn", "fashion_mnist")
model.load_state_dict(torch.load(path, weights_only=True))
t = time.perf_counter()
r = evaluate(model.eval(), eps=0.1, attacks=["square"], n_examples=n, batch_size=n, progress=False)
print(json.dumps({"package": generalist_bench.__file__, "seconds": time.perf_counter() - t,
                  "robust_acc": r.robust_acc, "flags": "".join("1" if f else "0" for f in r.flags("square").tolist()),
                  "forward_images": r.attack_stats["square"]["forward_images"]}))
