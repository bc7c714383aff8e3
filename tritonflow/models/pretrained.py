"""tritonflow.models: `PretrainedModel`, the base of the model families, and `from_pretrained`.

Framework stage (models). A family subclasses it with its `config_class` and `name_map`;
`from_pretrained(directory)` then reads config.json into the config (strictly: see config.py),
builds the model, and loads the weights all or nothing (see loading.py). Models come back in
eval mode, as transformers returns them. No transformers import is needed at any point.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterable

from tritonflow import dtypes as D
from tritonflow.autograd import no_grad
from tritonflow.models.config import CONFIG_FILE, ModelConfig
from tritonflow.models.errors import ConfigError
from tritonflow.models.loading import NameMap, load_checkpoint
from tritonflow.nn import init
from tritonflow.nn.modules import Module

_RANDOM_FILLS = ("uniform_", "normal_", "trunc_normal_")  # every random initialiser draws through these
_SKIP_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def skip_random_init():
    """Build modules without drawing their random initial weights (they stay zero).

    A model about to receive a checkpoint's weights would otherwise spend most of its loading
    time generating numbers it throws away (Philox on NumPy: about 20 s for MiniLM's 23M
    parameters). The random fills of tritonflow.nn.init are swapped for no-ops while the model is
    built (transformers' no_init_weights does the same); load_checkpoint then writes every
    parameter or raises, so none is left at zero silently.
    """
    with _SKIP_INIT_LOCK:
        saved = {name: getattr(init, name) for name in _RANDOM_FILLS}
        try:
            for name in _RANDOM_FILLS:
                setattr(init, name, lambda tensor, *args, **kwargs: tensor)
            yield
        finally:
            for name, fn in saved.items():
                setattr(init, name, fn)


def resolve_dtype(dtype, config: ModelConfig, source: str):
    """None: float32 (PyTorch's default); "auto": the dtype config.json says the weights were saved in."""
    if dtype is None:
        return D.float32
    if dtype == "auto":
        saved = config.saved_dtype or "float32"
        try:
            return D.as_dtype(saved)
        except Exception:
            raise ConfigError(f"{source}: torch_dtype {saved!r} is not a dtype tritonflow has") from None
    resolved = D.as_dtype(dtype)
    if not resolved.is_floating_point:
        raise ConfigError(f"from_pretrained: dtype must be a floating point dtype or 'auto', got {resolved.name}")
    return resolved


def init_transformer_weights(model: Module, std: float, scaled: tuple = (), scaled_std: float | None = None) -> None:
    """transformers' initialisation: biases 0, norm weights 1, every other weight N(0, std), and
    the weights whose names end with one of `scaled` N(0, scaled_std)."""
    with no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                init.zeros_(p)
            elif "norm" in name:
                init.ones_(p)
            elif scaled and name.endswith(scaled):
                init.normal_(p, 0.0, scaled_std)
            else:
                init.normal_(p, 0.0, std)


class PretrainedModel(Module):
    """A model built from a config, loadable from a Hugging Face checkpoint directory."""

    config_class: type = ModelConfig
    name_map: NameMap

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise ConfigError(f"{type(self).__name__}: expected a {self.config_class.__name__}, got "
                              f"{type(config).__name__}")
        config.validate(f"{type(self).__name__} config")
        self.config = config

    @classmethod
    def from_pretrained(cls, directory, *, dtype=None, device: str | None = None,
                        ignore_unknown: Iterable[str] = (), strict: bool = True, **model_kwargs):
        """The model saved in `directory` (config.json plus model.safetensors or its shards).

        dtype: None for float32, "auto" for the saved dtype, or a floating dtype.
        ignore_unknown: config.json fields to accept although tritonflow does not know them.
        strict: False skips checkpoint tensors the model has no parameter for (a task head).
        """
        directory = os.fspath(directory)
        config = cls.config_class.from_pretrained(directory, ignore_unknown)
        target = resolve_dtype(dtype, config, os.path.join(directory, CONFIG_FILE))
        with skip_random_init():
            model = cls(config, **model_kwargs)
        if target is not D.float32:
            model.to(target)
        model.load_checkpoint(directory, strict=strict)
        if device is not None and device != "cpu":
            model.to(device)
        return model.eval()

    def load_checkpoint(self, directory, strict: bool = True) -> list[str]:
        """Load weights from a checkpoint directory into this model; all or nothing (loading.py).
        Returns the names skipped as unexpected (strict=False only)."""
        return load_checkpoint(self, directory, self.name_map, strict)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
