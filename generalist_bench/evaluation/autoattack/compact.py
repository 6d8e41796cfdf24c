"""Compacting AutoAttack components: the same per-point arithmetic as pyautoattack, without the wasted work.

Official AutoAttack spends most of its time on work that cannot change a point's robust flag:

- APGD keeps attacking a point for all 100 iterations after it has been misclassified (it only looks for a
  later misclassified iterate to return), although everything APGD does is per point — the step size, its
  halving schedule and the checkpoints count iterations, not the batch;
- APGD-T and FAB-T run their 9 target classes one after another, re-entering Python for each; every run is
  per point too, so the 9 runs of a point can go in one batch (one loop of 100 iterations instead of 9);
- FAB keeps shrinking a perturbation once it is inside the eps-ball (it is a minimum-norm attack), while
  AutoAttack only asks whether such a perturbation exists;
- Linf Square builds, projects and blends whole images where only one window can change, and runs the model on
  proposals identical to the current best image (the window already sits at the drawn vertex), whose outcome is
  known: no change.

The loops below follow pyautoattack's (Croce & Hein, MIT licence) step by step, so that the arithmetic is the
same; they call its helpers (losses, normalisation, oscillation check, projections) wherever they can.

Here a point leaves the batch as soon as its flag is settled: APGD drops a row at the first iteration whose
prediction is wrong (upstream's ``acc`` can never become true again); FAB drops a row as soon as it holds an
adversarial example within eps (upstream counts the point as fooled whatever happens afterwards); and once
one target of a point succeeds its other targets' rows go too (upstream would never attack the point with
them). The rows that stay go through exactly upstream's operations, in upstream's order, with upstream's
helper functions and the same per-sample random starts, so every point's robust flag equals upstream's
(checked by ``tests/test_evaluation_compact.py`` and by ``generalist_bench.bench`` on real models). What differs:
the adversarial example returned for a fooled point is the first one found instead of upstream's last
(APGD) or smallest (FAB) — both are misclassified within the ball. Floating-point kernels may depend on the
batch size (a row's logits can differ in the last bits as the batch shrinks); ``sanity.batch_invariance``
in the result records whether the model's logits depend on the batch size at all. The evaluation calls the
model through ``evaluation.fastpath.ModelRunner`` (row chunks, prepacked no-grad passes), which returns the
eager model's numbers.

Under the ``fast`` engine the loops below run their iterations on a bfloat16 search model (``search``); each
verdict that settles a row — APGD's misclassified iterate, FAB's adversarial iterate within eps — is recomputed
by the exact float32 model first (``confirm_fooled``), and a rejected row stays. A row escalates to the exact
model for the rest of its run (``escalated``) once a verdict of it is rejected or its search logits put it near
the decision boundary (``near_boundary``): there bfloat16's rounding, not the attack, would decide the outcome
(without this, a one-off trace found two points missed that the exact engine fools by margins of about 1e-4
logits). Square and everything outside the loops (which points are attacked, the target order) run in float32
under every engine.
"""

from __future__ import annotations

import math

import torch
from pyautoattack.checks import check_zero_gradients
from pyautoattack.fab_projections import projection_l2, projection_linf
from pyautoattack.other_utils import L2_norm

from ..fastpath import confirm_fooled, escalate, escalated, is_searching, near_boundary, search
from .apgd import apgd_start, resolve_indices


class _Rows:
    """Row bookkeeping: ``pos[i]`` is the output position of active row i, ``group[i]`` its point."""

    def __init__(self, n: int, groups: torch.Tensor | None, device):
        self.pos = torch.arange(n, device=device)
        self.group = self.pos.clone() if groups is None else groups.to(device)

    def settled(self, fooled: torch.Tensor) -> torch.Tensor:
        """Rows to drop: the fooled ones and every other row of a fooled point (its other targets)."""
        if not bool(fooled.any()):
            return fooled
        return torch.isin(self.group, self.group[fooled])

    def keep(self, keep: torch.Tensor, *tensors):
        self.pos, self.group = self.pos[keep], self.group[keep]
        return [None if t is None else t[keep] for t in tensors]


# ------------------------------------------------------------------------------------------ APGD
def apgd_run(atk, x: torch.Tensor, y: torch.Tensor, x_init: torch.Tensor, *, y_target: torch.Tensor | None = None,
             groups: torch.Tensor | None = None):
    """pyautoattack ``APGDAttack.attack_single_run`` (Linf/L2) for rows ``x`` from ``x_init``, dropping rows as
    their flags settle. ``atk`` is an initialised pyautoattack APGD object (its hyper-parameters and helpers
    are used). Returns ``(fooled, x_adv)``: per row whether it was misclassified at some iterate, and that
    iterate (the start for rows never fooled). The iterations run on the ``fast`` engine's search model
    where there is one; a row counts as misclassified only once the exact model agrees."""
    with search(atk.model):
        return _apgd_run(atk, x, y, x_init, y_target=y_target, groups=groups)


def _apgd_run(atk, x, y, x_init, *, y_target, groups):
    """Line-for-line port of pyautoattack's ``APGDAttack.attack_single_run`` (its steps in its order), except that
    rows whose point is fooled leave the batch (see the module docstring)."""
    if atk.norm not in ("Linf", "L2") or atk.is_tf_model or atk.use_largereps:
        raise NotImplementedError("the compacting APGD covers Linf and L2 on PyTorch models")
    n_all = x.shape[0]
    if atk.loss == "ce":
        crit = torch.nn.CrossEntropyLoss(reduction="none")
    else:
        crit = {"dlr": atk.dlr_loss, "dlr-targeted": getattr(atk, "dlr_loss_targeted", None)}[atk.loss]
    targeted = atk.loss == "dlr-targeted"
    rows = _Rows(n_all, groups, x.device)
    out_fooled = torch.zeros(n_all, dtype=torch.bool, device=x.device)

    x_adv = x_init.clone().clamp(0.0, 1.0)
    out_adv = x_adv.clone()  # upstream's x_best_adv starts as the start point
    xo, yo, yt = x, y, y_target
    loss_steps = torch.zeros([atk.n_iter, n_all], device=x.device)
    esc = torch.zeros(n_all, dtype=torch.bool, device=x.device)  # rows escalated to the exact model (fast engine)

    def loss_grad(xa, ya, yta):
        if targeted:
            atk.y_target = yta
        xa.requires_grad_()
        grad = torch.zeros_like(xa)
        for _ in range(atk.eot_iter):
            with torch.enable_grad(), escalated(atk.model, esc):
                logits = atk.model(xa)
                loss_indiv = crit(logits, ya)
                loss = loss_indiv.sum()
            grad += torch.autograd.grad(loss, [xa])[0].detach()
        grad /= float(atk.eot_iter)
        return logits, loss_indiv, grad

    logits, loss_indiv, grad = loss_grad(x_adv, yo, yt)
    grad_best = grad.clone()
    if atk.loss in ("dlr", "dlr-targeted"):
        check_zero_gradients(grad, logger=atk.logger)

    def fooled_now(xa, logits):
        """Rows misclassified at ``xa`` (search verdicts confirmed; a row whose verdict is rejected escalates)."""
        z = logits.detach()
        # the search's "fooled" verdicts, and its "robust" ones near the boundary, where the exact model may differ
        check = (z.max(1)[1] != yo) | (near_boundary(atk.model, z, yo) & ~esc)
        with escalated(atk.model, esc):
            fooled = confirm_fooled(atk.model, xa, yo, check)
        escalate(atk.model, esc, check & ~fooled)
        return fooled

    acc = ~fooled_now(x_adv, logits)
    loss_best = loss_indiv.detach().clone()
    alpha = 2.0
    step_size = alpha * atk.eps * torch.ones([n_all, *([1] * atk.ndims)], device=x.device)
    x_best = x_adv.clone()
    x_adv_old = x_adv.clone()
    k = atk.n_iter_2 + 0
    counter3 = 0
    loss_best_last_check = loss_best.clone()
    reduced_last_check = torch.ones_like(loss_best)

    def drop(fooled_rows):
        """Record the settled rows' outcome and remove them from every per-row tensor."""
        nonlocal xo, yo, yt, x_adv, x_adv_old, x_best, grad, grad_best, loss_best, step_size, acc, loss_indiv
        nonlocal loss_steps, loss_best_last_check, reduced_last_check, esc
        out_fooled[rows.pos[fooled_rows]] = True
        out_adv[rows.pos[fooled_rows]] = x_adv[fooled_rows].detach()
        keep = ~rows.settled(fooled_rows)
        loss_steps = loss_steps[:, keep]
        (xo, yo, yt, x_adv, x_adv_old, x_best, grad, grad_best, loss_best, step_size, acc, loss_indiv,
         loss_best_last_check, reduced_last_check, esc) = rows.keep(
            keep, xo, yo, yt, x_adv.detach(), x_adv_old, x_best, grad, grad_best, loss_best, step_size, acc,
            loss_indiv.detach(), loss_best_last_check, reduced_last_check, esc)

    if not bool(acc.all()):
        drop(~acc)

    for i in range(atk.n_iter):
        if len(yo) == 0:
            break
        with torch.no_grad():
            x_adv = x_adv.detach()
            grad2 = x_adv - x_adv_old
            x_adv_old = x_adv.clone()
            a = 0.75 if i > 0 else 1.0
            if atk.norm == "Linf":
                x_adv_1 = x_adv + step_size * torch.sign(grad)
                x_adv_1 = torch.clamp(torch.min(torch.max(x_adv_1, xo - atk.eps), xo + atk.eps), 0.0, 1.0)
                x_adv_1 = torch.clamp(torch.min(torch.max(x_adv + (x_adv_1 - x_adv) * a + grad2 * (1 - a),
                                                          xo - atk.eps), xo + atk.eps), 0.0, 1.0)
            else:
                x_adv_1 = x_adv + step_size * atk.normalize(grad)
                x_adv_1 = torch.clamp(xo + atk.normalize(x_adv_1 - xo) * torch.min(
                    atk.eps * torch.ones_like(xo).detach(), L2_norm(x_adv_1 - xo, keepdim=True)), 0.0, 1.0)
                x_adv_1 = x_adv + (x_adv_1 - x_adv) * a + grad2 * (1 - a)
                x_adv_1 = torch.clamp(xo + atk.normalize(x_adv_1 - xo) * torch.min(
                    atk.eps * torch.ones_like(xo).detach(), L2_norm(x_adv_1 - xo, keepdim=True)), 0.0, 1.0)
            x_adv = x_adv_1 + 0.0

        logits, loss_indiv, grad = loss_grad(x_adv, yo, yt)
        pred = ~fooled_now(x_adv, logits)
        if not bool(pred.all()):  # upstream: acc = min(acc, pred) is final for these rows; x_best_adv = x_adv
            drop(~pred)
            if len(yo) == 0:
                break

        with torch.no_grad():
            y1 = loss_indiv.detach().clone()
            loss_steps[i] = y1 + 0
            ind = (y1 > loss_best).nonzero().squeeze()
            x_best[ind] = x_adv[ind].clone()
            grad_best[ind] = grad[ind].clone()
            loss_best[ind] = y1[ind] + 0
            counter3 += 1
            if counter3 == k:
                fl_oscillation = atk.check_oscillation(loss_steps, i, k, loss_best, k3=atk.thr_decr)
                fl_reduce_no_impr = (1.0 - reduced_last_check) * (loss_best_last_check >= loss_best).float()
                fl_oscillation = torch.max(fl_oscillation, fl_reduce_no_impr)
                reduced_last_check = fl_oscillation.clone()
                loss_best_last_check = loss_best.clone()
                if fl_oscillation.sum() > 0:
                    ind_fl_osc = (fl_oscillation > 0).nonzero().squeeze()
                    step_size[ind_fl_osc] /= 2.0
                    x_adv[ind_fl_osc] = x_best[ind_fl_osc].clone()
                    grad[ind_fl_osc] = grad_best[ind_fl_osc].clone()
                k = max(k - atk.size_decr, atk.n_iter_min)
                counter3 = 0
    if targeted:
        atk.y_target = None
    return out_fooled, out_adv


def apgd_perturb(atk, x: torch.Tensor, y: torch.Tensor, indices, seed: int, tag: str) -> torch.Tensor:
    """pyautoattack's ``APGDAttack.perturb`` / ``APGDAttack_targeted.perturb`` with per-sample starts (as
    ``SeededAPGD``), every (target, restart) run of a point in one batch, rows dropped as they settle."""
    atk.init_hyperparam(x)
    x = x.detach().clone().float().to(atk.device)
    y = y.detach().clone().long().to(atk.device)
    idx = resolve_indices(indices, x)
    with torch.no_grad():
        acc = atk.model(x).max(1)[1] == y
    adv = x.clone()
    todo = acc.nonzero().flatten()
    if len(todo) == 0:
        return adv
    xs, ys, ids = x[todo], y[todo], idx[todo.cpu()]
    targeted = atk.loss == "dlr-targeted"
    if targeted:
        with torch.no_grad():
            order = atk.model(xs).sort(dim=1)[1]
        runs = [(t, r) for t in range(2, atk.n_target_classes + 2) for r in range(atk.n_restarts)]
    else:
        runs = [(None, r) for r in range(atk.n_restarts)]
    done = torch.zeros(len(todo), dtype=torch.bool, device=x.device)
    for chunk in _run_groups(runs, len(todo)):
        live = (~done).nonzero().flatten()  # as upstream: a later run only attacks the points still robust
        if len(live) == 0:
            break
        starts, targets = [], []
        for t, r in chunk:
            run_tag = (f"{tag}/t{t}" if t is not None else tag) + (f"/r{r}" if r else "")
            starts.append(apgd_start(atk, xs[live], ids[live.cpu()], seed, run_tag))
            if t is not None:
                targets.append(order[live, -t])
        n, k = len(live), len(chunk)
        fooled, xa = apgd_run(atk, xs[live].repeat(k, *([1] * (x.dim() - 1))), ys[live].repeat(k), torch.cat(starts),
                              y_target=torch.cat(targets) if targeted else None,
                              groups=torch.arange(n, device=x.device).repeat(k))
        _take_first_hits(adv, todo[live], fooled, xa, k)
        done[live] |= fooled.view(k, n).any(0)
    return adv


# Rows per batch when the runs (targets, restarts) of the points go together. Per-image cost on a CPU grows
# with the batch (cache), so runs are grouped only while the batch stays small; bigger evaluations run them
# one after another, as upstream does (the points fooled by one run skip the next).
MAX_ROWS = 256


def _run_groups(runs: list, n_points: int) -> list[list]:
    per = max(1, MAX_ROWS // max(n_points, 1))
    return [runs[i:i + per] for i in range(0, len(runs), per)]


# ------------------------------------------------------------------------------------------ FAB
def fab_targeted_run(atk, x: torch.Tensor, y: torch.Tensor, la_target: torch.Tensor, groups: torch.Tensor):
    """pyautoattack ``FABAttack.attack_single_run(is_targeted=True, use_rand_start=False)`` (Linf/L2) on rows
    that are all classified correctly, dropping a row once it holds an adversarial example within eps.
    Returns ``(fooled, x_adv)`` per row. The iterations run on the ``fast`` engine's search model where there
    is one; an iterate that would settle a row (a new best distance within eps) counts only once the exact
    model agrees it is adversarial, while iterates outside eps steer the search on the search model's word."""
    with search(atk.predict):
        return _fab_targeted_run(atk, x, y, la_target, groups)


def _fab_targeted_run(atk, x, y, la_target, groups):
    """Line-for-line port of pyautoattack's ``FABAttack_PT.attack_single_run`` (targeted), except that rows holding
    an adversarial example inside the eps-ball leave the batch (see the module docstring)."""
    if atk.norm not in ("Linf", "L2"):
        raise NotImplementedError("the compacting FAB covers Linf and L2")
    n_all = x.shape[0]
    ndims = x.dim() - 1
    rows = _Rows(n_all, groups, x.device)
    out_fooled = torch.zeros(n_all, dtype=torch.bool, device=x.device)
    out_adv = x.clone()
    im2, la2, lt = x.detach().clone(), y.detach().clone(), la_target.detach().clone()
    adv = im2.clone()
    res2 = 1e10 * torch.ones([n_all], device=x.device)
    x1 = im2.clone()
    x0 = im2.clone().reshape([n_all, -1])
    esc = torch.zeros(n_all, dtype=torch.bool, device=x.device)  # rows escalated to the exact model (fast engine)
    for _ in range(atk.n_iter):
        bs = x1.shape[0]
        if bs == 0:
            break
        with torch.no_grad():
            u1 = torch.arange(bs)
            with escalated(atk.predict, esc):
                df, dg = atk.get_diff_logits_grads_batch_targeted(x1, la2, lt)
            if atk.norm == "Linf":
                dist1 = df.abs() / (1e-12 + dg.abs().reshape(dg.shape[0], dg.shape[1], -1).sum(dim=-1))
            else:
                dist1 = df.abs() / (1e-12 + (dg ** 2).reshape(dg.shape[0], dg.shape[1], -1).sum(dim=-1).sqrt())
            ind = dist1.min(dim=1)[1]
            dg2 = dg[u1, ind]
            b = (- df[u1, ind] + (dg2 * x1).reshape(x1.shape[0], -1).sum(dim=-1))
            w = dg2.reshape([bs, -1])
            proj = projection_linf if atk.norm == "Linf" else projection_l2
            d3 = proj(torch.cat((x1.reshape([bs, -1]), x0), 0), torch.cat((w, w), 0), torch.cat((b, b), 0))
            d1 = torch.reshape(d3[:bs], x1.shape)
            d2 = torch.reshape(d3[-bs:], x1.shape)
            if atk.norm == "Linf":
                a0 = d3.abs().max(dim=1, keepdim=True)[0].view(-1, *[1] * ndims)
            else:
                a0 = (d3 ** 2).sum(dim=1, keepdim=True).sqrt().view(-1, *[1] * ndims)
            a0 = torch.max(a0, 1e-8 * torch.ones(a0.shape, device=x.device))
            a1 = a0[:bs]
            a2 = a0[-bs:]
            alpha = torch.min(torch.max(a1 / (a1 + a2), torch.zeros(a1.shape, device=x.device)),
                              atk.alpha_max * torch.ones(a1.shape, device=x.device))
            x1 = ((x1 + atk.eta * d1) * (1 - alpha) + (im2 + d2 * atk.eta) * alpha).clamp(0.0, 1.0)

            with escalated(atk.predict, esc):
                z = atk.predict(x1)  # upstream's _get_predicted_label(x1), keeping the logits
            is_adv = z.max(1)[1] != la2
            t_all = None
            if is_searching(atk.predict):
                if atk.norm == "Linf":
                    t_all = (x1 - im2).reshape([bs, -1]).abs().max(dim=1)[0]
                else:
                    t_all = ((x1 - im2) ** 2).reshape(bs, -1).sum(dim=-1).sqrt()
                # only an iterate that could settle the row (a new best distance within eps) needs the exact
                # verdict: the search's "adversarial" ones, and (FAB's iterates sit on the linearised decision
                # boundary by design) its "not adversarial" ones near the boundary. Iterates outside eps only
                # steer the search (res2 > eps settles nothing).
                near = near_boundary(atk.predict, z, la2) & ~esc
                settle = (is_adv | near) & (t_all < res2) & (t_all <= atk.eps)
                if bool(settle.any()):
                    with escalated(atk.predict, esc):
                        confirmed = confirm_fooled(atk.predict, x1, la2, settle)
                    is_adv = (is_adv & ~settle) | confirmed
                    escalate(atk.predict, esc, settle & ~confirmed)
            if is_adv.sum() > 0:
                ind_adv = atk.check_shape(is_adv.nonzero().squeeze())
                if t_all is not None:  # the distances the settle test used (an L2 sum over a subset could round
                    t = t_all[ind_adv]  # differently and settle an unconfirmed row)
                elif atk.norm == "Linf":
                    t = (x1[ind_adv] - im2[ind_adv]).reshape([ind_adv.shape[0], -1]).abs().max(dim=1)[0]
                else:
                    t = ((x1[ind_adv] - im2[ind_adv]) ** 2).reshape(ind_adv.shape[0], -1).sum(dim=-1).sqrt()
                adv[ind_adv] = x1[ind_adv] * (t < res2[ind_adv]).float().reshape([-1, *[1] * ndims]) \
                    + adv[ind_adv] * (t >= res2[ind_adv]).float().reshape([-1, *[1] * ndims])
                res2[ind_adv] = t * (t < res2[ind_adv]).float() + res2[ind_adv] * (t >= res2[ind_adv]).float()
                x1[ind_adv] = im2[ind_adv] + (x1[ind_adv] - im2[ind_adv]) * atk.beta
                # upstream's verdict: fooled iff the best adversarial example found lies within eps
                done = res2 <= atk.eps
                if bool(done.any()):
                    out_fooled[rows.pos[done]] = True
                    out_adv[rows.pos[done]] = adv[done]
                    im2, la2, lt, adv, res2, x1, x0, esc = rows.keep(~rows.settled(done), im2, la2, lt, adv, res2,
                                                                     x1, x0, esc)
    return out_fooled, out_adv


def fab_targeted_perturb(atk, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """pyautoattack's ``FABAttack.perturb`` (targeted, one restart: no random numbers), every target of a point
    in one batch, rows dropped as they settle."""
    if atk.n_restarts != 1:
        raise NotImplementedError("the compacting FAB-T runs AutoAttack's single restart")
    x = x.detach().clone().float().to(atk.device)
    y = y.detach().clone().long().to(atk.device)
    adv = x.clone()
    with torch.no_grad():
        acc = atk._predict_fn(x).max(1)[1] == y
        todo = acc.nonzero().flatten()
        if len(todo) == 0:
            return adv
        xs, ys = x[todo], y[todo]
        output = atk._predict_fn(xs)
        ok = output.max(1)[1] == ys  # attack_single_run re-checks the points it gets (same forward)
        todo, xs, ys, output = todo[ok], xs[ok], ys[ok], output[ok]
        order = output.sort(dim=-1)[1]
    targets = list(range(2, atk.n_target_classes + 2))
    done = torch.zeros(len(todo), dtype=torch.bool, device=x.device)
    for chunk in _run_groups(targets, len(todo)):
        live = (~done).nonzero().flatten()
        if len(live) == 0:
            break
        n, k = len(live), len(chunk)
        lt = torch.cat([order[live, -t] for t in chunk])
        groups = torch.arange(n, device=x.device).repeat(k)
        fooled, xa = fab_targeted_run(atk, xs[live].repeat(k, *([1] * (x.dim() - 1))), ys[live].repeat(k), lt,
                                      groups)
        _take_first_hits(adv, todo[live], fooled, xa, k)
        done[live] |= fooled.view(k, n).any(0)
    return adv


def _take_first_hits(adv: torch.Tensor, todo: torch.Tensor, fooled: torch.Tensor, xa: torch.Tensor,
                     k: int) -> torch.Tensor:
    """Rows are k runs × n points (run-major): a point is fooled iff one of its runs is, and its adversarial
    example comes from the first such run."""
    n = len(todo)
    fooled = fooled.view(k, n)
    first = fooled.float().argmax(0)
    hit = fooled.any(0)
    sel = (first * n + torch.arange(n, device=adv.device))[hit]
    adv[todo[hit]] = xa[sel]
    return adv



# ------------------------------------------------------------------------------------------ Square
def square_linf_run(atk, x: torch.Tensor, y: torch.Tensor):
    """pyautoattack ``SquareAttack.attack_single_run`` for Linf, computing only what a query can change.

    A Linf Square query moves one s×s window of a point's current best image to a vertex of the eps-box and
    keeps the proposal if its margin loss is lower. Upstream builds the whole proposed image
    (``x_best + deltas``, projected onto the box and [0, 1]) and blends whole images, losses and margins with
    0/1 masks. Outside the window that arithmetic returns ``x_best`` unchanged (``x_best`` already lies in the box
    and in [0, 1], and the deltas are 0), and a 0/1 blend of finite numbers returns one of them exactly. So
    here only the window is computed and written back, with upstream's operations on it, and the rows whose
    window does not change (it already sits at the drawn vertex: frequent late in the schedule, when windows are
    a pixel or two) skip the forward pass: upstream would find the same loss (not strictly lower) and a positive
    margin, and change nothing but the query count. The shared random draws are upstream's calls, in upstream's
    order. ``tests/test_evaluation_compact.py`` checks the images bit for bit against upstream's loop. ``atk`` is a
    ``SeededSquare`` (its per-point stripe draws) prepared by ``perturb``.

    Square runs on the exact model under every engine, ``fast`` included: its accept/reject decisions compare
    losses of nearly identical images, which bfloat16 logits cannot resolve (measured: 4 more points of 100
    survived 2,000 bfloat16-searched queries than float32 ones on a PGD-AT SmallCNN).
    """
    from pyautoattack.square import SquareAttack

    margin_and_loss = SquareAttack.margin_and_loss  # upstream's (no per-point bookkeeping after the init draw)
    with torch.no_grad():
        c, h, w = x.shape[1:]
        n_features = c * h * w
        n_ex_total = x.shape[0]
        x_best = torch.clamp(x + atk.eps * atk.random_choice([x.shape[0], c, 1, w]), 0.0, 1.0)
        margin_min, loss_min = atk.margin_and_loss(x_best, y)
        n_queries = torch.ones(x.shape[0]).to(atk.device)
        atk.skipped_queries = 0
        if (margin_min < 0.0).all():
            return n_queries, x_best
        lower, upper = x - atk.eps, x + atk.eps  # upstream's x_curr ∓ eps, for all rows once instead of per query
        for i_iter in range(atk.n_queries):
            act = (margin_min > 0.0).nonzero().flatten()
            p = atk.p_selection(i_iter)
            s = max(int(round(math.sqrt(p * n_features / c))), 1)
            s = min(s, min(h, w))
            vh = int(atk.random_int(0, h - s))
            vw = int(atk.random_int(0, w - s))
            delta = 2.0 * atk.eps * atk.random_choice([c, 1, 1])  # upstream's window value in new_deltas
            win = (slice(None), slice(vh, vh + s), slice(vw, vw + s))
            best_win = x_best[(act, *win)]
            new_win = torch.clamp(torch.min(torch.max(best_win + delta, lower[(act, *win)]), upper[(act, *win)]),
                                  0.0, 1.0)
            changed = (new_win != best_win).flatten(1).any(1)
            atk.skipped_queries += int((~changed).sum())
            n_queries[act] += 1.0
            rows = act[changed]
            if len(rows):
                new_win = new_win[changed]
                x_new = x_best[rows]
                x_new[(slice(None), *win)] = new_win
                margin, loss = margin_and_loss(atk, x_new, y[rows])
                improved = loss < loss_min[rows]
                loss_min[rows] = torch.where(improved, loss, loss_min[rows])
                improved |= margin <= 0.0
                margin_min[rows] = torch.where(improved, margin, margin_min[rows])
                x_best[(rows[improved], *win)] = new_win[improved]
            if int((margin_min <= 0.0).sum()) == n_ex_total:
                break
    return n_queries, x_best
