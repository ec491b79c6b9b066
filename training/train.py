"""Fine-tune a student on ETD data (CoT, PoT and EoT targets), full or LoRA, with the HF Trainer.

    python -m training.train --config training/configs/etd_smollm2.yaml [--key value ...]
    accelerate launch --num_processes N -m training.train --config ...   # N GPUs
    torchrun --nproc_per_node N -m training.train --config ... --device cpu  # N CPU processes

Each row (``question, thought, target``) becomes ``prompt + target + eos`` where the prompt is
``Question: {question}\\n{trigger}\\n``; the loss covers the target and the final eos only (labels
are built from lengths, never by masking pad ids, so the eos is learned even though pad == eos).
Batches are grouped by length to avoid padding, in an order drawn from the seed and the epoch
alone, which the processes of a multi-process run share and a resumed run repeats (``batch_size``
is per process). The run resumes from its last checkpoint, evaluates the loss on a validation
slice, and writes ``config.yaml``, ``metrics.json`` and the final adapter (LoRA) or model (full)
with its tokenizer to ``{output_dir}/final``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from datasets import Dataset, DatasetDict, load_from_disk
from torch import distributed as dist
from transformers import (
    DataCollatorForSeq2Seq,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import get_last_checkpoint

from eotd.model_loading import load_model
from eotd.prompts import THOUGHTS, build_prompt
from training.config import load_config, save_config
from training.distributed import current_world


@dataclass
class TrainConfig:
    """Fine-tune a student on ETD rows (id, question, thought, target, answer, source)."""

    data: str = "outputs/etd_rule"  # datasets.load_from_disk folder (Dataset or DatasetDict)
    output_dir: str = "runs/etd"
    base: str = "default"  # "default" (SmolLM2-135M-Instruct), a folder, a .gguf or a hub id
    method: Literal["lora", "full"] = "lora"
    init_adapter: str | None = None  # continue training this LoRA adapter instead of a new one
    thoughts: list[str] = field(default_factory=lambda: list(THOUGHTS))
    exclude_sources: list[str] = field(default_factory=list)  # e.g. ["augment"]
    max_length: int = 384  # longer rows are dropped (truncating would cut off the eos)
    val_fraction: float = 0.02  # questions held out when the data has no validation split
    val_max_rows: int = 600
    epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    batch_size: int = 64
    eval_batch_size: int = 128
    grad_accum: int = 1
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on a GPU that has it
    optim: str = "adamw_torch_fused"
    group_by_length: bool = True
    torch_compile: bool = False
    gradient_checkpointing: bool = False
    eval_every: int = 0  # steps between validation passes; 0: once per epoch
    save_every: int = 0  # steps between checkpoints; 0: once per epoch
    logging_steps: int = 10
    save_total_limit: int = 2
    save_dtype: Literal["fp32", "bf16"] = "bf16"  # for the saved adapter (halves its size)
    num_workers: int = 2
    seed: int = 42
    resume: bool = True
    device: str = "auto"  # "cpu" forces the CPU even where a GPU exists
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default (1 suits tiny models)
    time_limit_s: float = 0.0  # stop training (and save) after this many seconds; 0: no limit
    # with time_limit_s: warm up and decay the lr (cosine) over the time budget, not the steps, so
    # a time-boxed run ends its decay; set epochs high enough that the data outlasts the budget
    lr_by_time: bool = False


def encode_row(
    tokenizer: PreTrainedTokenizerBase, question: str, thought: str, target: str
) -> dict[str, list[int]]:
    """Token ids and labels for one row: the prompt is masked, target and eos are learned."""
    prompt = tokenizer(build_prompt(question, thought))["input_ids"]
    completion = tokenizer(target.strip(), add_special_tokens=False)["input_ids"]
    completion = [*completion, tokenizer.eos_token_id]
    ids = prompt + completion
    labels = [-100] * len(prompt) + completion
    return {
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "labels": labels,
        "length": len(ids),
    }


def _held_out(key: str, fraction: float) -> bool:
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def load_rows(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """The training and validation rows, filtered by thought and source.

    A DatasetDict's "validation" split is used when present; otherwise whole questions (by
    ``origin_id`` where set, else question text) are held out, so no question is in both parts.
    """
    path = Path(cfg.data)
    if not path.exists():
        raise FileNotFoundError(
            f"no training data at {path}; build it first (see training/datasets.py) or set --data"
        )
    loaded = load_from_disk(str(path))
    unknown = set(cfg.thoughts) - set(THOUGHTS)
    if unknown:
        raise ValueError(f"unknown thoughts {sorted(unknown)}; use {', '.join(THOUGHTS)}")

    def keep(row: dict) -> bool:
        return row["thought"] in cfg.thoughts and row.get("source") not in cfg.exclude_sources

    if isinstance(loaded, DatasetDict):
        train = loaded["train"]
        val = loaded.get("validation")
    else:
        train, val = loaded, None
    missing = {"question", "thought", "target"} - set(train.column_names)
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}")
    train = train.filter(keep)
    if val is None:
        origins = train["origin_id"] if "origin_id" in train.column_names else [None] * len(train)
        keys = [o or q for o, q in zip(origins, train["question"], strict=True)]
        flags = [_held_out(k, cfg.val_fraction) for k in keys]
        val = train.select([i for i, f in enumerate(flags) if f])
        train = train.select([i for i, f in enumerate(flags) if not f])
    else:
        val = val.filter(keep)
    if len(val) > cfg.val_max_rows:
        val = val.shuffle(seed=cfg.seed).select(range(cfg.val_max_rows))
    if len(train) == 0:
        raise ValueError(f"no training rows left in {path} after filtering")
    return train, val


def tokenize(rows: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    """Encode rows (see ``encode_row``) and drop those longer than ``max_length`` tokens."""
    encoded = rows.map(
        lambda r: encode_row(tokenizer, r["question"], r["thought"], r["target"]),
        remove_columns=rows.column_names,
        desc="tokenizing",
    )
    return encoded.filter(lambda r: r["length"] <= max_length)


def lr_at(fraction: float, warmup: float) -> float:
    """The lr factor at ``fraction`` of the run: linear warmup over the first ``warmup``, then
    cosine decay to zero at 1.0."""
    if fraction < warmup:
        return fraction / warmup
    progress = min(1.0, (fraction - warmup) / max(1e-9, 1.0 - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class EpochTimer(TrainerCallback):
    """Records the wall time of each epoch (the figure the speed target is about) and stops the
    run once ``limit`` seconds have passed (0: never). With ``lr_by_time``, the Trainer's
    scheduler follows ``lr_at`` over the elapsed share of ``limit`` instead of the steps.

    The time is the first process's, read after each optimizer step and shared with the others,
    so that every process of a multi-process run stops at the same step and sets the same lr."""

    def __init__(self, limit: float = 0.0, lr_by_time: bool = False, warmup: float = 0.0) -> None:
        self.seconds: list[float] = []
        self.limit = limit
        self.lr_by_time = lr_by_time
        self.warmup = warmup
        self.stopped_early = False
        self.elapsed = 0.0  # seconds of training at the last optimizer step
        self._start = self._begin = time.perf_counter()

    def _time_factor(self, _step: int) -> float:
        return lr_at(self.elapsed / self.limit, self.warmup)

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        self._begin = time.perf_counter()
        self.elapsed = 0.0
        if self.lr_by_time:  # the Trainer's schedulers are LambdaLRs: swap in a clock
            lr_scheduler.lr_lambdas = [self._time_factor] * len(lr_scheduler.lr_lambdas)
            groups = lr_scheduler.optimizer.param_groups
            for group, base in zip(groups, lr_scheduler.base_lrs, strict=True):
                group["lr"] = base * self._time_factor(0)  # the first step warms up too
            lr_scheduler._last_lr = [group["lr"] for group in groups]

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._start)

    def on_optimizer_step(self, args, state, control, **kwargs):
        if not self.limit:
            return
        elapsed = torch.tensor(time.perf_counter() - self._begin, dtype=torch.float64)
        if dist.is_initialized():  # every process calls this at the same step
            elapsed = elapsed.to(args.device)
            dist.broadcast(elapsed, src=0)
        self.elapsed = float(elapsed)

    def on_step_end(self, args, state, control, **kwargs):
        if self.limit and self.elapsed > self.limit:
            self.stopped_early = control.should_training_stop = control.should_save = True


class SharedLengthSampler(LengthGroupedSampler):
    """The Trainer's ``group_by_length`` order, drawn from ``seed + epoch`` instead of the global
    RNG, and grouped in global batches: one process of batch 4 takes the rows two of batch 2 take.

    The processes of a run advance the global RNG differently (dropout on batches of different
    shapes), so with it they drew different orders after a while and their shares overlapped."""

    def __init__(self, global_batch: int, lengths: list[int], seed: int) -> None:
        super().__init__(global_batch, lengths=lengths)
        self.seed = seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Called by accelerate's data loader at the start of every epoch, on every process."""
        self.generator = torch.Generator().manual_seed(self.seed + epoch)


class StudentTrainer(Trainer):
    """The HF Trainer with ``SharedLengthSampler`` for ``group_by_length``."""

    def _get_train_sampler(self, train_dataset: Dataset | None = None):
        sampler = super()._get_train_sampler(train_dataset)
        if not isinstance(sampler, LengthGroupedSampler):
            return sampler
        a = self.args
        global_batch = a.train_batch_size * a.gradient_accumulation_steps * a.world_size
        return SharedLengthSampler(global_batch, sampler.lengths, a.seed)


def _use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.precision == "fp32":
        return False
    supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if cfg.precision == "bf16" and not supported:
        raise ValueError("precision bf16 needs a CUDA GPU with bf16 support")
    return supported


def train(cfg: TrainConfig) -> dict:
    """Run one fine-tuning job described by ``cfg``; return the final metrics."""
    out = Path(cfg.output_dir)
    world = current_world()
    if world.first:
        save_config(cfg, out)
    if cfg.init_adapter and cfg.method != "lora":
        raise ValueError("init_adapter continues a LoRA adapter: use method: lora")
    if cfg.lr_by_time and not cfg.time_limit_s:
        raise ValueError("lr_by_time needs time_limit_s > 0")
    device = cfg.device
    if device == "auto" and torch.cuda.is_available() and world.size > 1:
        device = f"cuda:{world.local_rank}"  # one process per GPU
    loaded = load_model(
        cfg.base, cfg.init_adapter, device=device, dtype="fp32", trainable=True, threads=cfg.threads
    )
    model, tokenizer = loaded.model, loaded.tokenizer
    if model.config.is_encoder_decoder:
        raise ValueError("training supports causal LMs (the ETD students); got an encoder-decoder")
    tokenizer.padding_side = "right"
    set_seed(cfg.seed)  # the new adapter's initial weights
    if cfg.method == "lora" and loaded.adapter is None:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.lora_targets,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        if cfg.method == "lora":
            model.enable_input_require_grads()

    train_rows, val_rows = load_rows(cfg)
    train_set = tokenize(train_rows, tokenizer, cfg.max_length)
    if len(train_set) == 0:
        raise ValueError(
            f"no training rows left: all {len(train_rows)} are longer than max_length "
            f"({cfg.max_length} tokens)"
        )
    val_set = tokenize(val_rows, tokenizer, cfg.max_length) if len(val_rows) else None
    bf16 = _use_bf16(cfg, loaded.device)
    cpu = loaded.device.type == "cpu"
    args = TrainingArguments(
        output_dir=str(out),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        bf16=bf16,
        optim=cfg.optim,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        torch_compile=cfg.torch_compile,
        eval_strategy=("steps" if cfg.eval_every else "epoch") if val_set else "no",
        eval_steps=cfg.eval_every or None,
        save_strategy="steps" if cfg.save_every else "epoch",
        save_steps=cfg.save_every or None,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        dataloader_num_workers=0 if cpu else cfg.num_workers,
        dataloader_pin_memory=not cpu,
        use_cpu=cfg.device == "cpu",
        seed=cfg.seed,
        report_to="none",
        remove_unused_columns=False,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, pad_to_multiple_of=8)
    timer = EpochTimer(cfg.time_limit_s, cfg.lr_by_time, cfg.warmup_ratio)
    trainer = StudentTrainer(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_set,
        eval_dataset=val_set,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    last = get_last_checkpoint(str(out)) if cfg.resume and out.is_dir() else None
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    train_seconds = time.perf_counter() - started
    evaluation = trainer.evaluate() if val_set else {}

    final = out / "final"
    if not trainer.is_world_process_zero():
        return {}
    to_save = trainer.model
    if cfg.method == "lora" and cfg.save_dtype == "bf16":
        to_save = to_save.to(torch.bfloat16)
    to_save.save_pretrained(final)
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(final)

    metrics: dict = {
        "method": cfg.method,
        "base": loaded.base,
        "init_adapter": loaded.adapter,
        "train_rows": len(train_set),
        "dropped_rows_too_long": len(train_rows) - len(train_set),
        "val_rows": len(val_set) if val_set else 0,
        "rows_per_thought": {t: train_rows["thought"].count(t) for t in cfg.thoughts},
        "train_tokens_per_epoch": int(sum(train_set["length"])),
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "train_seconds": round(train_seconds, 2),
        "epoch_seconds": [round(s, 2) for s in timer.seconds],
        "stopped_at_time_limit": timer.stopped_early,
        "resumed_from": last,
        "bf16": bf16,
        "device": str(loaded.device),
        "processes": args.world_size,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "final": str(final),
    }
    if evaluation:
        metrics["eval_loss"] = evaluation["eval_loss"]
        metrics["eval_perplexity"] = math.exp(min(evaluation["eval_loss"], 50))
    if torch.cuda.is_available():
        metrics["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    history = json.dumps(trainer.state.log_history, indent=1)
    (out / "log_history.json").write_text(history + "\n", encoding="utf-8")
    return metrics


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(TrainConfig, argv)
    metrics = train(cfg)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
