"""tritonflow.models: GPT-2, BERT and Llama built from tritonflow.nn, loadable from Hugging Face
checkpoint directories (config.json + model.safetensors or shards) without transformers, and
generation with a compiled static KV cache.

    from tritonflow.models import GPT2, Llama, Bert, from_pretrained
    model = from_pretrained("path/to/checkpoint")       # the family from config.json's model_type
    out = model.generate(ids, max_new_tokens=32, top_k=50, top_p=0.9)
"""
from __future__ import annotations

import json
import os

from tritonflow.models.bert import Bert, BertConfig, BertOutput, mean_pool  # noqa: F401
from tritonflow.models.config import CONFIG_FILE, ModelConfig  # noqa: F401
from tritonflow.models.errors import CheckpointError, ConfigError  # noqa: F401
from tritonflow.models.generation import CausalLM  # noqa: F401
from tritonflow.models.gpt2 import GPT2, GPT2Config  # noqa: F401
from tritonflow.models.llama import Llama, LlamaConfig  # noqa: F401
from tritonflow.models.pretrained import PretrainedModel  # noqa: F401
from tritonflow.models.sampling import filter_logits, next_token  # noqa: F401

MODEL_TYPES = {"gpt2": GPT2, "bert": Bert, "llama": Llama}


def from_pretrained(directory, **kwargs) -> PretrainedModel:
    """The model in a checkpoint directory, its class chosen by config.json's model_type
    (keyword arguments as for `<Family>.from_pretrained`)."""
    path = os.path.join(os.fspath(directory), CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            model_type = json.load(f).get("model_type")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no config.json (a Hugging Face checkpoint directory holds one)") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON object ({exc})") from None
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"{path}: model_type {model_type!r} is not one tritonflow builds "
                          f"(it has {', '.join(sorted(MODEL_TYPES))})")
    return MODEL_TYPES[model_type].from_pretrained(directory, **kwargs)


__all__ = ["GPT2", "GPT2Config", "Bert", "BertConfig", "BertOutput", "Llama", "LlamaConfig", "CausalLM",
           "PretrainedModel", "ModelConfig", "ConfigError", "CheckpointError", "from_pretrained", "mean_pool",
           "filter_logits", "next_token"]
