"""External submissions: a model trained elsewhere, evaluated here under exactly the leaderboard's protocol and
published to the zoo and the leaderboard like our own, its card saying it was submitted.

``generalist-bench submit --checkpoint PATH --arch NAME --name NAME [--link URL --authors ... --venue ...]``

The protocol is the full profile of ``train_and_submit``: standard AutoAttack (compact engine, seed 0) on the
first n test points (1,000 by default) and clean + PGD-20 on the whole test set. Every check runs before anything
is written, so a bad submission (a name that exists, a state dict of another architecture, a pickled module,
probabilities instead of logits) is one error and leaves the zoo and the leaderboard as they were.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..registry import Style
from ..trainers.registry import register_trainer

SUBMITTED = "submitted"  # ModelCard.trainer of a model trained elsewhere
register_trainer(SUBMITTED, title="Submitted (trained elsewhere)", style=Style("#9467bd", "^"), trainable=False,
                 description="trained elsewhere, evaluated here under the leaderboard's protocol")
QUICK_N: int | None = None  # clean + PGD-20 points (None: the whole test set, the leaderboard's protocol)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


@dataclass(frozen=True)
class Submission:
    checkpoint: Path
    arch: str
    name: str
    dataset: str = "fashion_mnist"
    threat_model: str = "Linf"
    eps: float | None = None
    n_examples: int = 1000
    title: str | None = None
    link: str = ""
    authors: str = ""
    venue: str = ""


def check_name(name: str, model_dir: str | Path) -> None:
    """A valid zoo name that no entry (of any data set or threat model) uses yet."""
    from .card import QUICK_SUFFIX
    from .store import list_zoo

    if not NAME_RE.match(name) or name.endswith(QUICK_SUFFIX):
        raise ConfigError(f"--name {name!r}: use letters, digits, '_', '.', '-' (at most 100, not ending in "
                          f"{QUICK_SUFFIX!r})")
    taken = [e for e in list_zoo(model_dir) if Path(e.json_path).stem == name]
    if taken:
        raise ConfigError(f"--name {name!r} exists in the zoo ({taken[0].json_path}); choose another name")


def submit(sub: Submission, *, model_dir: str | Path = "model_zoo", leaderboard_dir: str | Path = "leaderboard",
           runs_dir: str | Path = "runs", progress: bool = True, command: str | None = None) -> Path:
    """Evaluate and publish ``sub``; returns the card's path. Raises before writing anything on bad input."""
    from ..data import get_dataset_info
    from ..evaluation.api import evaluate, model_fingerprint, normalize_norm, resolve_eps
    from ..evaluation.checks import validate_outputs
    from ..evaluation.loading import load_checkpoint
    from ..leaderboard.render import render_leaderboard
    from ..utils.io import atomic_write_text
    from .store import save_to_zoo

    info = get_dataset_info(sub.dataset)
    norm = normalize_norm(sub.threat_model)
    eps = resolve_eps(sub.eps, norm, info.name)
    if sub.n_examples < 1:
        raise ConfigError(f"--n-examples must be ≥ 1, got {sub.n_examples}")
    check_name(sub.name, model_dir)
    model = load_checkpoint(sub.checkpoint, sub.arch, info.name)  # CheckpointError: pickled, truncated, other arch
    from ..data import load_dataset

    x0 = load_dataset(info.name, "test").x[:64]
    validate_outputs(model, x0, info.num_classes, info.name)      # ModelOutputError: probabilities, NaN, shape
    digest = hashlib.sha256(Path(sub.checkpoint).read_bytes()).hexdigest()

    out = Path(runs_dir) / SUBMITTED / sub.name
    out.mkdir(parents=True, exist_ok=True)
    fp = model_fingerprint(model)[:12]
    evaluations = {}
    for suite, n in (("autoattack", sub.n_examples), ("quick", QUICK_N)):
        result = evaluate(model, dataset=info.name, threat_model=norm, eps=eps, suite=suite, n_examples=n,
                          batch_size=500, seed=0, split="test", progress=progress,
                          state_path=out / f"eval_{suite}_n{n or 'all'}_{fp}.state.json")
        atomic_write_text(out / f"eval_{suite}.json", result.to_json())
        evaluations[suite] = result
    check_name(sub.name, model_dir)  # again: another submission may have taken it meanwhile
    card = make_submitted_card(sub, norm, eps, evaluations, digest,
                               command or shlex.join(["generalist-bench", *sys.argv[1:]]))
    _, js = save_to_zoo(model.state_dict(), card, model_dir, overwrite=False)
    render_leaderboard(model_dir, leaderboard_dir)
    return js


def make_submitted_card(sub: Submission, norm: str, eps: float, evaluations: dict, checkpoint_sha256: str,
                        command: str):
    from datetime import datetime, timezone

    from ..data import get_dataset_info
    from ..registry import title as display_title
    from ..utils import env
    from .card import ModelCard, format_eps, normalize_threat_model

    info = get_dataset_info(sub.dataset)
    aa = evaluations["autoattack"]
    arch, data = display_title("architecture", sub.arch), display_title("dataset", info.name)
    title = sub.title or f"{sub.name} ({arch}, {data}, {norm} eps {format_eps(eps)}) — submitted"
    return ModelCard(
        model_id=sub.name, link=sub.link, name=title, authors=sub.authors, venue=sub.venue,
        architecture=arch, dataset=info.name, eps=eps, eps_str=format_eps(eps),
        clean_acc=aa.clean_acc, autoattack_acc=aa.robust_acc,
        footnote="submitted: trained elsewhere, not by generalist-bench; evaluated here under the leaderboard "
                 "protocol",
        threat_model=normalize_threat_model(norm), arch=sub.arch, num_classes=info.num_classes,
        n_examples=aa.n_examples, trainer=SUBMITTED, seed=0, epochs=0,
        selection_rule="none here: trained and selected by the submitter", chosen_epoch=None,
        train_wall_time_s=None, hardware=env.hardware(), quick=False,
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"), command=command, commit=env.git_commit(),
        versions=env.library_versions(),
        recipe={"submitted": {"checkpoint": Path(sub.checkpoint).name, "checkpoint_sha256": checkpoint_sha256,
                              "arch": sub.arch, "dataset": info.name}},
        evaluations={k: v.to_dict() for k, v in evaluations.items()},
    )
