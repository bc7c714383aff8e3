"""tritonflow.models: Hugging Face tensor names to a model's own, and all-or-nothing loading.

Framework stage (model loading). Each model family names its parameters its own way
(`blocks.0.attn.qkv.weight`) and declares a `NameMap`: ordered rules, one line each, from its names
to the names transformers writes (`blocks.{n}.attn.qkv.{w} -> transformer.h.{n}.attn.c_attn.{w}`:
`{n}` is a layer number, any other `{name}` one dotted component), which of them are stored
transposed (GPT-2's Conv1D layers keep weights as (in, out)), the backbone prefix a file may or
may not carry (a GPT2Model file has `h.0...`, a GPT2LMHeadModel file `transformer.h.0...`), and
the non-weight buffers old checkpoints contain (`attn.bias` masks, `position_ids`,
`rotary_emb.inv_freq`), which are skipped.

`load_checkpoint` reads nothing into the model until everything is known to fit: every tensor
mapped, none missing (parameters tied to each other, such as GPT-2's lm_head and token
embedding, need one of their names), every shape and dtype checked, and every tensor's bytes
read and converted. Only then does `Module.load_state_dict` copy the values in, so a failed
load leaves the model exactly as it was.
"""
from __future__ import annotations

import os
import re

import numpy as np

from tritonflow.models.errors import CheckpointError
from tritonflow.models.safetensors_reader import TensorInfo, checkpoint_tensors

_LISTED = 8  # how many names an error message lists before "and N more"


def _rule(line: str) -> tuple[re.Pattern, str]:
    """`ours -> theirs` as (a regex over our names, the replacement giving theirs)."""
    ours, arrow, theirs = line.partition("->")
    if not arrow:
        raise ValueError(f"NameMap rule {line!r} has no '->'")
    pattern = ""
    for literal, field in re.findall(r"([^{]*)(?:\{(\w+)\})?", ours.strip()):
        pattern += re.escape(literal)
        if field:
            pattern += rf"(?P<{field}>\d+)" if field == "n" else rf"(?P<{field}>\w+)"
    return re.compile(pattern), re.sub(r"\{(\w+)\}", r"\\g<\1>", theirs.strip())


class NameMap:
    """How a model's parameter names correspond to a Hugging Face checkpoint's (module docstring)."""

    def __init__(self, rules: str, backbone_prefix: str, transposed: str | None = None,
                 ignored: str | None = None) -> None:
        """`rules`: one `ours -> theirs` rule per line, tried in order; `transposed` and `ignored`
        are regexes over our names and over the checkpoint's names."""
        self.rules = tuple(_rule(line) for line in rules.strip().splitlines() if line.strip())
        self.backbone_prefix = backbone_prefix
        self.transposed = re.compile(transposed) if transposed else None
        self.ignored = re.compile(ignored) if ignored else None

    def hf_name(self, ours: str) -> str:
        """The name transformers' own save_pretrained gives the tensor behind parameter `ours`."""
        for pattern, theirs in self.rules:
            if pattern.fullmatch(ours):
                return pattern.sub(theirs, ours)
        raise KeyError(f"NameMap: no rule names parameter {ours!r}")  # a family's table is incomplete

    def spellings(self, ours: str) -> tuple[str, str]:
        """The two names a file may use: with and without the backbone prefix."""
        name = self.hf_name(ours)
        prefix = self.backbone_prefix
        other = name[len(prefix):] if name.startswith(prefix) else prefix + name
        return name, other

    def is_transposed(self, ours: str) -> bool:
        return bool(self.transposed and self.transposed.fullmatch(ours))

    def is_ignored(self, theirs: str) -> bool:
        return bool(self.ignored and self.ignored.search(theirs))


def _listing(names: list) -> str:
    shown = ", ".join(repr(n) for n in names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _tied_groups(model) -> list[list[str]]:
    """The model's state-dict names grouped by the tensor behind them (tied weights share one)."""
    groups: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(tensor), []).append(name)
    return list(groups.values())


def match_tensors(model, infos: dict[str, TensorInfo], name_map: NameMap, source: str,
                  strict: bool = True) -> tuple[dict[str, TensorInfo], list[str]]:
    """({model name: the checkpoint tensor for it}, checkpoint names skipped as unexpected)."""
    wanted: dict[str, str] = {}
    for group in _tied_groups(model):
        for ours in group:
            for spelling in name_map.spellings(ours):
                wanted.setdefault(spelling, ours)
    found: dict[str, TensorInfo] = {}
    unexpected = []
    for theirs, info in infos.items():
        ours = wanted.get(theirs)
        if ours is None:
            if not name_map.is_ignored(theirs):
                unexpected.append(theirs)
            continue
        if ours in found:
            raise CheckpointError(f"{source}: tensors {found[ours].name!r} and {theirs!r} both hold the model's "
                                  f"{ours!r} (the file has it twice, with and without the prefix "
                                  f"{name_map.backbone_prefix!r})")
        found[ours] = info
    if unexpected and strict:
        raise CheckpointError(f"{source}: unexpected tensor{'s' if len(unexpected) > 1 else ''} "
                              f"{_listing(unexpected)} ({infos[unexpected[0]].path}); the "
                              f"{type(model).__name__} model has no parameter for "
                              f"{'them' if len(unexpected) > 1 else 'it'}. A checkpoint of another "
                              f"architecture or size? (strict=False skips them)")
    chosen: dict[str, TensorInfo] = {}
    missing = []
    for group in _tied_groups(model):
        present = [ours for ours in group if ours in found]
        if not present:
            missing.append(name_map.hf_name(group[0]))
            continue
        for ours in group:  # tied names all load from the first one the file has (as transformers ties them)
            chosen[ours] = found[present[0]]
    if missing:
        raise CheckpointError(f"{source}: missing tensor{'s' if len(missing) > 1 else ''} {_listing(missing)}, "
                              f"which the {type(model).__name__} model needs")
    return chosen, unexpected


def _expected_shape(name_map: NameMap, ours: str, target) -> tuple:
    shape = tuple(target.shape)
    return shape[::-1] if name_map.is_transposed(ours) else shape


def read_state(model, chosen: dict[str, TensorInfo], name_map: NameMap) -> dict:
    """Every value checked (shape, dtype), read and converted to the model's dtype: the state
    dict `load_state_dict` then copies in. Raises before returning if any tensor does not fit."""
    from tritonflow.api.convert import from_numpy
    own = model.state_dict(keep_vars=True)
    for ours, info in chosen.items():
        want = _expected_shape(name_map, ours, own[ours])
        if info.shape != want:
            raise CheckpointError(f"{info.path}: tensor {info.name!r} has shape {info.shape}, but the model's "
                                  f"{ours!r} needs {want}" + (" (stored transposed, as Conv1D keeps it)"
                                                              if name_map.is_transposed(ours) else ""))
        if own[ours].dtype.is_floating_point and not info.is_floating_point:
            raise CheckpointError(f"{info.path}: tensor {info.name!r} is {info.dtype.name}, but the model's "
                                  f"{ours!r} is a floating point parameter")
    state = {}
    converted: dict[tuple, object] = {}  # tied names share one read
    for ours, info in chosen.items():
        key = (info.path, info.name, own[ours].dtype.name, name_map.is_transposed(ours))
        if key not in converted:
            array = info.read()
            if name_map.is_transposed(ours):
                array = array.T
            converted[key] = from_numpy(np.ascontiguousarray(array.astype(own[ours].dtype.np, copy=False)))
        state[ours] = converted[key]
    return state


def load_checkpoint(model, directory, name_map: NameMap, strict: bool = True) -> list[str]:
    """Load a Hugging Face checkpoint directory's weights into `model`, all or nothing.

    Returns the checkpoint names skipped as unexpected (always empty when strict).
    """
    directory = os.fspath(directory)
    infos = checkpoint_tensors(directory)
    chosen, unexpected = match_tensors(model, infos, name_map, directory, strict)
    state = read_state(model, chosen, name_map)
    device = next(iter(model.state_dict().values())).device if state else "cpu"
    if device != "cpu":
        state = {k: v.to(device) for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return unexpected
