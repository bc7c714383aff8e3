"""tritonflow.models: model configurations and the reading of Hugging Face config.json files.

Framework stage (model loading). A configuration is a dataclass whose fields carry Hugging Face's
names (`n_embd`, `num_key_value_heads`, ...), so a config.json reads straight into it and a user
recognises every field. Reading is strict, because a field we do not understand may change the
architecture (a `sliding_window`, a new `rope_type`) and silently give wrong numbers:

- a required field that is missing is a ConfigError naming the file and the field;
- a field that is neither one of the config's own nor one known not to change the computation
  (bookkeeping such as `architectures` or `transformers_version`) is a ConfigError that names it
  and says how to load anyway (`ignore_unknown=[...]`);
- a value of the wrong type, or one the model does not implement, is a ConfigError naming the
  field and the value (each config's `check()` holds its own rules).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, ClassVar, Iterable

from tritonflow.models.errors import ConfigError

CONFIG_FILE = "config.json"

# Fields of Hugging Face's PretrainedConfig that describe bookkeeping, generation defaults,
# training-time switches or task heads, none of which changes what the base model computes.
BOOKKEEPING_FIELDS = frozenset({
    "_name_or_path", "architectures", "model_type", "transformers_version", "torch_dtype", "dtype",
    "use_cache", "gradient_checkpointing", "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id",
    "decoder_start_token_id", "id2label", "label2id", "num_labels", "task_specific_params", "problem_type",
    "finetuning_task", "tokenizer_class", "prefix", "output_attentions", "output_hidden_states",
    "return_dict", "torchscript", "max_length", "min_length", "do_sample", "num_beams", "temperature",
    "top_k", "top_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size", "early_stopping",
    "chunk_size_feed_forward", "classifier_dropout", "_attn_implementation", "attn_implementation",
    "_commit_hash", "use_return_dict", "output_scores", "return_dict_in_generate",
})


@dataclasses.dataclass
class ModelConfig:
    """Base of the model configurations (see the module docstring for the reading rules)."""

    MODEL_TYPE: ClassVar[str] = ""
    REQUIRED: ClassVar[tuple] = ()              # fields a config.json must give
    EXTRA_IGNORED: ClassVar[frozenset] = frozenset()  # family-specific fields with no effect on the math

    # Token ids generation uses (stop at eos); not part of the architecture.
    bos_token_id: int | None = None
    eos_token_id: int | list | None = None
    pad_token_id: int | None = None
    # Architecture switches every family shares; only the plain decoder-or-encoder form is built.
    is_encoder_decoder: bool = False
    add_cross_attention: bool = False
    pruned_heads: dict | None = None
    # The dtype the checkpoint was saved in (config.json's torch_dtype / dtype), for dtype="auto".
    saved_dtype: str | None = None

    def check(self, source: str) -> None:
        """Raise ConfigError for values the model does not implement (overridden per family)."""

    @classmethod
    def from_dict(cls, values: dict, source: str = "<dict>", ignore_unknown: Iterable[str] = ()):
        """A config from config.json's mapping; `source` names the file in errors."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(values).__name__}")
        model_type = values.get("model_type")
        if model_type is not None and model_type != cls.MODEL_TYPE:
            raise ConfigError(f"{source}: model_type is {model_type!r}, but {cls.__name__} reads "
                              f"{cls.MODEL_TYPE!r} configurations")
        own = {f.name for f in dataclasses.fields(cls)} - {"saved_dtype"}
        ignored = BOOKKEEPING_FIELDS | cls.EXTRA_IGNORED | frozenset(ignore_unknown)
        unknown = sorted(k for k in values if k not in own and k not in ignored)
        if unknown:
            raise ConfigError(f"{source}: unknown field{'s' if len(unknown) > 1 else ''} "
                              f"{', '.join(repr(k) for k in unknown)} for a {cls.MODEL_TYPE} model; tritonflow "
                              f"does not know what {'they do' if len(unknown) > 1 else 'it does'}, and it may "
                              f"change the architecture. If it does not, load with ignore_unknown={unknown!r}")
        missing = [k for k in cls.REQUIRED if k not in values]
        if missing:
            raise ConfigError(f"{source}: missing required field{'s' if len(missing) > 1 else ''} "
                              f"{', '.join(repr(k) for k in missing)} for a {cls.MODEL_TYPE} model")
        kwargs = {k: v for k, v in values.items() if k in own}
        kwargs["saved_dtype"] = values.get("torch_dtype", values.get("dtype"))
        config = cls(**kwargs)
        config.validate(source)
        return config

    @classmethod
    def from_json_file(cls, path: str, ignore_unknown: Iterable[str] = ()):
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                values = json.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no config.json (a Hugging Face checkpoint directory holds one)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
        return cls.from_dict(values, path, ignore_unknown)

    @classmethod
    def from_pretrained(cls, directory: str, ignore_unknown: Iterable[str] = ()):
        return cls.from_json_file(os.path.join(os.fspath(directory), CONFIG_FILE), ignore_unknown)

    def validate(self, source: str = "<config>") -> None:
        """Types of every field against its annotation, then the family's own rules."""
        for field in dataclasses.fields(self):
            expect_field_type(source, field.name, getattr(self, field.name), field.type)
        require(not self.is_encoder_decoder, source, "is_encoder_decoder", True, "decoder-only or encoder-only models")
        require(not self.add_cross_attention, source, "add_cross_attention", True, "models without cross-attention")
        require(not self.pruned_heads, source, "pruned_heads", self.pruned_heads, "models with no pruned heads")
        self.check(source)

    def to_dict(self) -> dict:
        """config.json's mapping for this configuration (Hugging Face's names)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "saved_dtype"}
        out["model_type"] = self.MODEL_TYPE
        return out


_TYPE_NAMES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "dict": (dict,),
               "list": (list,), "None": (type(None),)}


def expect_field_type(source: str, name: str, value: Any, annotation: str) -> None:
    """ConfigError unless `value` fits an annotation written as `int | None`, `float`, ... ."""
    allowed: tuple = ()
    for part in str(annotation).replace(" ", "").split("|"):
        allowed += _TYPE_NAMES.get(part, (object,))
    ok = isinstance(value, allowed)
    if isinstance(value, bool) and bool not in allowed:
        ok = False  # true/false is not a number of heads
    if not ok:
        raise ConfigError(f"{source}: field {name!r} must be {annotation}, got {value!r}")


def require(condition: bool, source: str, name: str, value: Any, what: str) -> None:
    """ConfigError for a value the model does not implement: `what` says what is supported."""
    if not condition:
        raise ConfigError(f"{source}: field {name!r} is {value!r}; tritonflow supports {what}")
