"""A tiny causal LM with its own small tokenizer, for tests and dry runs of the training path.

It has SmolLM2's special tokens (``<|im_end|>`` as eos and pad) so that it exercises the same code
paths as the real student, but it trains and generates in seconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# A few lines in each thought's style: enough vocabulary for a tiny model that writes junk fast.
SAMPLE_TEXTS = [
    "Question: Tom has 3 apples and buys 5 more. How many apples does he have?",
    "a = 3\nb = 5\nans = a + b",
    "apples = 3\nans = apples + 5\nprint(ans)",
    "Tom has 3 + 5 = 8 apples. The answer is 8.",
]


def make_tiny_model(
    folder: str | Path,
    texts: Iterable[str],
    *,
    vocab_size: int = 400,
    hidden_size: int = 64,
    layers: int = 2,
    seed: int = 0,
) -> Path:
    """Train a byte-level BPE tokenizer on ``texts``, build a random tiny Llama, save both."""
    folder = Path(folder)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(texts), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        bos_token="<|im_start|>",
        unk_token="<|endoftext|>",
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_tiny_student(folder: str | Path, rows: list[dict], steps: int = 120) -> Path:
    """A tiny model fully fine-tuned (CPU, seconds) until it writes ``rows``' targets.

    ``rows`` hold ``question, thought, target``; returns the folder of the trained model.
    """
    from datasets import Dataset

    from eotd.prompts import build_prompt
    from training.train import TrainConfig, train

    folder = Path(folder)
    texts = [build_prompt(r["question"], r["thought"]) + r["target"] for r in rows]
    base = make_tiny_model(folder / "base", texts * 5)
    full = [{"id": str(i), "source": "rule", "origin_id": r["question"], **r} for i, r in
            enumerate(rows)]  # fmt: skip
    Dataset.from_list(full).save_to_disk(str(folder / "data"))
    cfg = TrainConfig(
        data=str(folder / "data"), output_dir=str(folder / "run"), base=str(base), method="full",
        max_steps=steps, batch_size=8, learning_rate=3e-3, lr_scheduler="constant",
        warmup_ratio=0.0, val_fraction=0.0, save_every=steps, logging_steps=steps, num_workers=0,
        device="cpu", threads=1,
    )  # fmt: skip
    train(cfg)
    return folder / "run" / "final"
