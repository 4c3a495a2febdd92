"""The time of one step of torch.distributed.pipelining's Schedule1F1B, replayed event by event.

The cost model's pp plans run that schedule (edgetrain.runtime.training.parallel), and its waits shape
the step more than a closed formula can: a stage fires its sends together with the receives it needs
next and waits for all of them, so a send is not hidden behind compute, and in the steady phase each
boundary carries an activation one way and a gradient the other way at once (an exchange, which on the
testbed takes about twice a one-way transfer). Replayed here, per stage, in the order that schedule
issues them (torch 2.13, `Schedule1F1B._step_microbatches`):

    warm-up (min(M, S - s) forwards): receive input, forward, wait for the previous forward send,
        fire this forward's send (the last one is kept back);
    1B1F: {kept forward send + gradient receive} wait, backward; unless all forwards are done:
        {gradient send + next input receive} wait, forward, keep its send back;
    cool-down: fire the kept gradient send; per remaining backward: gradient receive wait, backward,
        wait for the previous gradient send, fire this one; finally wait for the last send.

A transfer starts when both its sender and its receiver have posted it (gloo sends a message only
once the receiver has asked for it) and lasts the one-way time, or the exchange time when it starts
together with a transfer the other way over the same boundary that was posted in the same batches
(the steady phase's activation and gradient). Pure Python: the simulator and the
planner call it for every pipeline they price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class StageCosts:
    forward_s: float
    """One micro-batch's forward on this stage (with the loss on the last)."""
    backward_s: float


@dataclass(frozen=True)
class BoundaryCosts:
    """The link between stage s and s + 1, for one micro-batch's activation (or its gradient)."""

    forward_s: float
    """Activation, s -> s + 1, alone on the link."""
    backward_s: float
    """Gradient, s + 1 -> s, alone on the link."""
    exchange_s: float
    """An activation and a gradient at once, one each way."""


def one_f_one_b_s(stages: Sequence[StageCosts], boundaries: Sequence[BoundaryCosts], microbatches: int) -> float:
    """Seconds from the step's start until the last stage has finished its schedule."""
    n, m = len(stages), microbatches
    if len(boundaries) != n - 1 or m < 1:
        raise ValueError("a pipeline needs one boundary between each two stages and at least one micro-batch")
    programs = [_program(s, n, m) for s in range(n)]
    # The transfer the other way over the same boundary that a stage posts in the same batch: the two
    # share the link when they start together (both ends posted both at once).
    partner = {t: u for program in programs for op, batch, _ in program if op == "post"
               for t in batch for u in batch if u[0] != t[0] and u[2] == t[2]}
    posted: dict[tuple, list[float]] = {}
    clocks = [0.0] * n

    def finish(transfer: tuple) -> float | None:
        times = posted.get(transfer, [])
        if len(times) < 2:
            return None
        start, (kind, _, boundary) = max(times), transfer
        link = boundaries[boundary]
        other = posted.get(partner.get(transfer), [])
        if len(other) == 2 and abs(max(other) - start) <= 1e-12:
            return start + link.exchange_s
        return start + (link.forward_s if kind == "F" else link.backward_s)

    def advance(s: int, operation: tuple) -> bool:
        op, batch, seconds = operation
        if op == "compute":
            clocks[s] += seconds if seconds >= 0 else (stages[s].forward_s if seconds == -1 else stages[s].backward_s)
        elif op == "post":
            for transfer in batch:
                posted.setdefault(transfer, []).append(clocks[s])
        else:  # wait
            ends = [finish(t) for t in batch]
            if any(end is None for end in ends):
                return False
            clocks[s] = max([clocks[s], *ends])
        return True

    _replay(dict(enumerate(programs)), advance, "1F1B")
    return max(clocks)


def _replay(programs: dict, advance, name: str) -> None:
    """Run every program's operations in order, each program as far as it can go (`advance(key, op)`
    does an operation, or returns False when it must wait for another program), round after round,
    until every one is done; a round in which none moved is a deadlock."""
    cursors = {key: 0 for key in programs}
    while any(cursors[key] < len(ops) for key, ops in programs.items()):
        progressed = False
        for key, ops in programs.items():
            while cursors[key] < len(ops) and advance(key, ops[cursors[key]]):
                cursors[key] += 1
                progressed = True
        if not progressed:
            raise RuntimeError(f"the {name} replay deadlocked (a schedule this module does not know)")


FORWARD, BACKWARD = -1, -2


def _program(s: int, n: int, m: int) -> list[tuple[str, tuple, float]]:
    """Stage s's operations: ("compute", (), FORWARD | BACKWARD), ("post", transfers, 0) and
    ("wait", transfers, 0); a transfer is (kind "F" | "B", micro-batch, boundary index)."""
    first, last = s == 0, s == n - 1
    ops: list[tuple[str, tuple, float]] = []

    def batch(*groups) -> tuple:
        return tuple(t for group in groups for t in group)

    def fwd_recv(k):
        return () if first else (("F", k, s - 1),)

    def fwd_send(k):
        return () if last else (("F", k, s),)

    def bwd_recv(k):
        return () if last else (("B", k, s),)

    def bwd_send(k):
        return () if first else (("B", k, s - 1),)

    def post_and_wait(transfers):
        if transfers:
            ops.append(("post", transfers, 0.0))
            ops.append(("wait", transfers, 0.0))

    warmup = min(m, n - s)
    forward = backward = 0
    send_work: tuple = ()
    kept_forward: tuple = ()
    for _ in range(warmup):
        post_and_wait(fwd_recv(forward))
        ops.append(("compute", (), FORWARD))
        if send_work:
            ops.append(("wait", send_work, 0.0))
        sends = fwd_send(forward)
        if forward != warmup - 1:
            send_work = sends
            if sends:
                ops.append(("post", sends, 0.0))
        else:
            kept_forward, send_work = sends, ()
        forward += 1
    kept_backward: tuple = ()
    while True:
        post_and_wait(batch(kept_forward, bwd_recv(backward)))
        ops.append(("compute", (), BACKWARD))
        kept_backward = bwd_send(backward)
        backward += 1
        if forward == m:
            break
        post_and_wait(batch(kept_backward, fwd_recv(forward)))
        ops.append(("compute", (), FORWARD))
        kept_forward = fwd_send(forward)
        forward += 1
    send_work = kept_backward
    if send_work:
        ops.append(("post", send_work, 0.0))
    while backward < m:
        post_and_wait(bwd_recv(backward))
        ops.append(("compute", (), BACKWARD))
        if send_work:
            ops.append(("wait", send_work, 0.0))
        send_work = bwd_send(backward)
        if send_work:
            ops.append(("post", send_work, 0.0))
        backward += 1
    if send_work:
        ops.append(("wait", send_work, 0.0))
    return ops


@dataclass(frozen=True)
class GroupMember:
    """One device of a hybrid plan's stage group: its forward and backward seconds per micro-batch (on
    its rows of each)."""

    device: str
    forward_s: tuple[float, ...]
    backward_s: tuple[float, ...]


def gpipe_hybrid_s(stages: Sequence[Sequence[GroupMember]],
                   handoffs: dict[tuple[int, int, int, int], tuple[float, float]]) -> float:
    """Seconds from the step's start until every member of a hybrid plan has run its GPipe schedule
    (edgetrain.runtime.training.parallel.HybridTrainer) and its sends have landed: every micro-batch
    forward, then every one backward in reverse; a member receives what it needs with blocking receives
    (previous-stage members in order) and sends with isend, which it waits for only at the end.
    `handoffs[(micro, s, j, k)]`: one-way seconds of the activation rows member j of stage s hands member
    k of stage s + 1 for that micro-batch, and of their gradient back (pairs that share no row are absent).
    A transfer starts when both ends posted it and the sender's uplink and the receiver's downlink are
    free: a device's sends go out one after another, as its receives come in (the testbed shapes each
    device's link per direction)."""
    micro = len(stages[0][0].forward_s)
    programs = {}
    for s, group in enumerate(stages):
        for j, member in enumerate(group):
            ops: list[tuple[str, tuple]] = []
            nexts = [k for k in range(len(stages[s + 1]))] if s + 1 < len(stages) else []
            previous = [p for p in range(len(stages[s - 1]))] if s > 0 else []
            for m in range(micro):
                ops += [("wait", ("F", m, s - 1, p, j)) for p in previous if (m, s - 1, p, j) in handoffs]
                ops.append(("compute", ("F", m)))
                ops += [("post", ("F", m, s, j, k)) for k in nexts if (m, s, j, k) in handoffs]
            for m in reversed(range(micro)):
                ops += [("wait", ("B", m, s, j, k)) for k in nexts if (m, s, j, k) in handoffs]
                ops.append(("compute", ("B", m)))
                ops += [("post", ("B", m, s - 1, p, j)) for p in previous if (m, s - 1, p, j) in handoffs]
            ops.append(("wait_sends", ()))
            programs[(s, j)] = ops
    posted: dict[tuple, dict[tuple[int, int], float]] = {}
    landed: dict[tuple, float] = {}
    link_free: dict[tuple[str, str], float] = {}
    clocks = {member: 0.0 for member in programs}
    sends = {member: [] for member in programs}

    def ends(transfer: tuple) -> tuple[tuple[int, int], tuple[int, int]]:
        kind, _, s, j, k = transfer
        return ((s, j), (s + 1, k)) if kind == "F" else ((s + 1, k), (s, j))

    def land(transfer: tuple) -> float | None:
        if transfer in landed:
            return landed[transfer]
        if len(posted.get(transfer, {})) < 2:
            return None
        (src, dst), (kind, m, s, j, k) = ends(transfer), transfer
        up, down = (stages[src[0]][src[1]].device, "up"), (stages[dst[0]][dst[1]].device, "down")
        start = max([*posted[transfer].values(), link_free.get(up, 0.0), link_free.get(down, 0.0)])
        forward_s, backward_s = handoffs[(m, s, j, k)]
        landed[transfer] = link_free[up] = link_free[down] = start + (forward_s if kind == "F" else backward_s)
        return landed[transfer]

    def advance(x: tuple[int, int], operation: tuple) -> bool:
        op, what = operation
        member = stages[x[0]][x[1]]
        if op == "compute":
            kind, m = what
            clocks[x] += member.forward_s[m] if kind == "F" else member.backward_s[m]
        elif op == "post":
            posted.setdefault(what, {})[x] = clocks[x]
            sends[x].append(what)
        else:
            waited = sends[x] if op == "wait_sends" else [what]
            if op == "wait":  # a blocking receive is posted once, when first reached
                posted.setdefault(what, {}).setdefault(x, clocks[x])
            times = [land(t) for t in waited]
            if any(t is None for t in times):
                return False
            clocks[x] = max([clocks[x], *times])
        return True

    _replay(programs, advance, "GPipe")
    return max(clocks.values())
