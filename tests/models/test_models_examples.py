"""Short runs of the model examples: char_gpt learns and its eager and compiled runs agree,
sentence_embeddings ranks the obvious neighbour first, llama_generate's cached greedy decoding
equals recomputing the whole sequence per token."""
from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def char_gpt():
    return load("char_gpt")


def test_char_gpt_eager_and_compiled_train_alike_and_learn(char_gpt):
    text = char_gpt.load_text(None)
    eager = char_gpt.train("eager", text, steps=40, progress=False)
    compiled = char_gpt.train("compiled", text, steps=40, progress=False)
    np.testing.assert_allclose(compiled["losses"], eager["losses"], rtol=1e-5, atol=1e-5)
    losses = eager["losses"]
    assert losses[0] > 0.9 * np.log(len(eager["data"].chars))   # starts near uniform guessing
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.7        # and has learned character statistics
    assert abs(compiled["val_loss"] - eager["val_loss"]) < 1e-4
    text_out = char_gpt.sample(compiled, prompt="def ", tokens=20)
    assert text_out.startswith("def ") and len(text_out) == 24


def test_sentence_embeddings_example_ranks_neighbours(capsys):
    example = load("sentence_embeddings")
    assert example.main(["--query", "A cheetah chases its prey."]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "query: A cheetah chases its prey."
    assert lines[1].endswith("A cheetah is running behind its prey.")


def test_llama_example_cached_greedy_equals_recomputation(capsys):
    example = load("llama_generate")
    assert example.main(["--tokens", "6"]) == 0
    out = capsys.readouterr().out
    assert "same tokens: True" in out and "decoding step 2" in out
