"""tritonflow.distributed: the process group — start-up under torchrun, ranks, barrier, and errors.

Training across processes, on torch.distributed: gloo moves CPU tensors, NCCL moves CUDA tensors,
torchrun starts the processes and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT.
Groups get a small integer id (the world is 0) so a traced collective can name its group in the
IR. Every torch.distributed failure becomes a DistributedError that says which collective, which
rank, and the likely cause: a peer that exited (the connection closed) or one that never came
(the timeout passed).
"""
from __future__ import annotations

import datetime
import itertools

from tritonflow import environment
from tritonflow.errors import DistributedError, UnsupportedError


def torch_distributed():
    """torch.distributed, or a clear error saying what to install."""
    try:
        import torch.distributed as dist
    except ImportError as exc:
        raise UnsupportedError(f"tritonflow.distributed needs torch: pip install 'tritonflow[gpu]' ({exc})") from exc
    if not dist.is_available():
        raise UnsupportedError("tritonflow.distributed: this torch build has no torch.distributed")
    return dist


class ProcessGroup:
    """A set of ranks that run collectives together (the world, or one made by new_group).

    The world's `torch_group` is None (torch's default group), and a destroyed group drops its
    torch group: a reference to torch's process group outliving destroy_process_group() (held by a
    Work handle, say) lets gloo's threads be torn down during interpreter exit, which aborts."""

    def __init__(self, group_id: int, torch_group, ranks: list, timeout_s: float | None) -> None:
        self.id = group_id
        self.torch_group = torch_group
        self.ranks = list(ranks)
        self.timeout_s = timeout_s
        self.destroyed = False

    def rank(self) -> int:
        return torch_distributed().get_rank(self.torch_group)

    def size(self) -> int:
        return len(self.ranks)

    def __repr__(self) -> str:
        return f"ProcessGroup(id={self.id}, ranks={self.ranks})"


_groups: dict[int, ProcessGroup] = {}
_group_ids = itertools.count(1)
WORLD_ID = 0


def _as_timedelta(timeout) -> datetime.timedelta | None:
    if timeout is None or isinstance(timeout, datetime.timedelta):
        return timeout
    return datetime.timedelta(seconds=float(timeout))


def _missing_launch_variables(rank: int, world_size: int) -> list:
    env = environment.launch_variables()
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not env[name]]
    if rank < 0 and not env["RANK"]:
        missing.append("RANK")
    if world_size < 0 and not env["WORLD_SIZE"]:
        missing.append("WORLD_SIZE")
    return missing


def init_process_group(backend: str | None = None, init_method: str | None = None, timeout=None,
                       world_size: int = -1, rank: int = -1, store=None) -> None:
    """Join the default group. Under torchrun no argument is needed; `timeout` (seconds or a
    timedelta; torch's default when None) bounds every collective. `backend` defaults to gloo for
    CPU tensors plus NCCL for CUDA tensors where a GPU is present."""
    dist = torch_distributed()
    if dist.is_initialized():
        raise DistributedError("init_process_group: the default process group is already initialized "
                               "(call destroy_process_group() first)")
    if init_method is None and store is None:
        missing = _missing_launch_variables(rank, world_size)
        if missing:
            raise DistributedError(f"init_process_group: {', '.join(missing)} not set: launch with "
                                   f"`torchrun --nproc_per_node=N script.py` (it sets them), or set MASTER_ADDR and "
                                   f"MASTER_PORT and pass rank= and world_size=")
    import torch
    cuda = torch.cuda.is_available() and dist.is_nccl_available()
    if backend is None:
        backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    delta = _as_timedelta(timeout)
    with collective_errors("init_process_group"):
        dist.init_process_group(backend=backend, init_method=init_method, timeout=delta,
                                world_size=world_size, rank=rank, store=store)
    if cuda and "nccl" in backend:
        # tritonflow's "cuda" device is torch's current device: one GPU per local rank.
        torch.cuda.set_device(int(environment.launch_variables()["LOCAL_RANK"] or 0))
    seconds = None if delta is None else delta.total_seconds()
    _groups[WORLD_ID] = ProcessGroup(WORLD_ID, None, list(range(dist.get_world_size())), seconds)


def destroy_process_group(group: ProcessGroup | None = None) -> None:
    """Leave `group` (the default one, and with it every group, when None)."""
    dist = torch_distributed()
    if group is None:
        for pg in _groups.values():
            _forget(pg)
        _groups.clear()
        if dist.is_initialized():
            dist.destroy_process_group()
        return
    if group.id == WORLD_ID:
        destroy_process_group(None)
        return
    torch_group = group.torch_group
    _forget(_groups.pop(group.id, group))
    dist.destroy_process_group(torch_group)


def _forget(group: ProcessGroup) -> None:
    group.torch_group = None
    group.destroyed = True


def is_available() -> bool:
    try:
        torch_distributed()
    except UnsupportedError:
        return False
    return True


def is_initialized() -> bool:
    return is_available() and torch_distributed().is_initialized() and WORLD_ID in _groups


def resolve(group, op: str) -> ProcessGroup:
    """The ProcessGroup a call means (None: the world), or an error when there is none."""
    if not is_initialized():
        raise DistributedError(f"{op}: the default process group is not initialized: call "
                               f"tritonflow.distributed.init_process_group() first (under torchrun)")
    if group is None:
        return _groups[WORLD_ID]
    if isinstance(group, int):
        if group not in _groups:
            raise DistributedError(f"{op}: no process group with id {group} in this process")
        return _groups[group]
    if not isinstance(group, ProcessGroup):
        raise DistributedError(f"{op}: group must be a tritonflow.distributed ProcessGroup (from new_group), "
                               f"got {type(group).__name__}")
    if group.destroyed:
        raise DistributedError(f"{op}: {group!r} was destroyed (destroy_process_group)")
    return group


def get_rank(group: ProcessGroup | None = None) -> int:
    return resolve(group, "get_rank").rank()


def get_world_size(group: ProcessGroup | None = None) -> int:
    return resolve(group, "get_world_size").size()


def get_backend(group: ProcessGroup | None = None) -> str:
    return str(torch_distributed().get_backend(resolve(group, "get_backend").torch_group))


def new_group(ranks: list | None = None, timeout=None, backend: str | None = None) -> ProcessGroup:
    """A group of some of the world's ranks (every rank must call this, with the same ranks)."""
    world = resolve(None, "new_group")
    dist = torch_distributed()
    ranks = list(range(world.size())) if ranks is None else sorted(int(r) for r in ranks)
    delta = _as_timedelta(timeout)
    with collective_errors("new_group", world):
        torch_group = dist.new_group(ranks=ranks, timeout=delta, backend=backend)
    group = ProcessGroup(next(_group_ids), torch_group, ranks,
                         world.timeout_s if delta is None else delta.total_seconds())
    _groups[group.id] = group
    return group


def barrier(group: ProcessGroup | None = None) -> None:
    """Wait until every rank of `group` has reached this call."""
    pg = resolve(group, "barrier")
    with collective_errors("barrier", pg):
        torch_distributed().barrier(group=pg.torch_group)


def all_gather_object(object_list: list, obj, group: ProcessGroup | None = None) -> None:
    """Every rank's picklable `obj`, in rank order, into `object_list` (as torch's)."""
    pg = resolve(group, "all_gather_object")
    with collective_errors("all_gather_object", pg):
        torch_distributed().all_gather_object(object_list, obj, group=pg.torch_group)


class collective_errors:
    """Context manager: a torch.distributed failure inside becomes a DistributedError."""

    def __init__(self, op: str, group: ProcessGroup | None = None) -> None:
        self.op = op
        self.group = group

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, DistributedError) or not isinstance(exc, (RuntimeError, ValueError)):
            return False
        raise DistributedError(describe_failure(self.op, self.group, exc)) from exc


def describe_failure(op: str, group: ProcessGroup | None, exc: BaseException) -> str:
    text = str(exc).strip()
    lowered = text.lower()
    where = ""
    if group is not None:
        try:
            where = f" on rank {group.rank()} of {group.size()}"
        except (RuntimeError, ValueError):
            where = f" in a group of {group.size()}"
    if "timed out" in lowered or "timeout" in lowered:
        limit = f" of {group.timeout_s:g} s" if group is not None and group.timeout_s else ""
        reason = (f"the timeout{limit} passed waiting for the other ranks: one of them failed, hangs, or "
                  f"did not reach this {op}")
    elif any(word in lowered for word in ("closed", "reset by peer", "broken pipe", "connection refused")):
        reason = "a peer process closed its connection: it probably failed or exited (its own output says why)"
    else:
        reason = "the collective failed"
    first_line = text.splitlines()[0] if text else type(exc).__name__
    return f"{op}{where}: {reason} (torch.distributed: {first_line})"
