"""The PyTorch engine: transformers' batched ``generate`` (left padding), a row at a time out."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation.streamers import BaseStreamer

from eotd.generation import EngineSpec, GenerationSettings, RowEnds, continuation_ids, mean
from eotd.model_loading import LoadedModel, cpu_features, end_token_ids


class _StepLogprobs(LogitsProcessor):
    """Keeps each step's log-probabilities (the model's own, before sampling warpers, which
    ``generate`` applies after custom processors) for the streamer to read the chosen tokens'."""

    def __init__(self) -> None:
        self.last: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores


class _RowStreamer(BaseStreamer):
    """Receives each decoding step's tokens from ``generate`` and hands them to ``rows``."""

    def __init__(self, end_ids: set[int], rows: RowEnds, logprobs: _StepLogprobs) -> None:
        self.end_ids = end_ids
        self.rows = rows
        self.logprobs = logprobs
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # the first call carries the prompts
            self.prompt_seen = True
            return
        tokens = value.reshape(-1)
        step = self.logprobs.last
        chosen = None if step is None else step.gather(1, tokens[:, None].to(step.device))
        scores = [None] * len(tokens) if chosen is None else chosen.reshape(-1).tolist()
        for row, token in enumerate(tokens.tolist()):
            if self.rows.done[row]:
                continue
            self.rows.score(row, scores[row])
            if token in self.end_ids:
                self.rows.finish(row, True)
            else:
                self.rows.append(row, token)

    def end(self) -> None:
        self.rows.finish_rest()


class TorchEngine:
    """A loaded model (``eotd.model_loading.load_model``) writing through ``generate``."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.end_ids = end_token_ids(self.tokenizer)
        on_cpu = loaded.device.type == "cpu"
        precision = str(loaded.dtype).removeprefix("torch.")
        if loaded.quantization:  # $EOTD_QUANTIZE or load_model(quantize=...)
            precision += f" with dynamic {loaded.quantization}"
        self.spec = EngineSpec(
            "torch", precision, loaded.device.type, loaded.base, loaded.adapter,
            torch.get_num_threads() if on_cpu else 0, cpu_features() if on_cpu else "",
        )  # fmt: skip

    def _generate_kwargs(self, settings: GenerationSettings) -> dict:
        kwargs = {
            "max_new_tokens": settings.max_new_tokens,
            "eos_token_id": self.end_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
            "do_sample": settings.do_sample,
            "num_return_sequences": settings.num_samples,
        }
        if settings.do_sample:
            kwargs.update(
                temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k
            )
        else:  # silence the model's default sampling parameters
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if settings.stop_strings:
            kwargs.update(stop_strings=list(settings.stop_strings), tokenizer=self.tokenizer)
        return kwargs

    @torch.inference_mode()
    def generate_rows(
        self, prompts: Sequence[str], settings: GenerationSettings, rows: RowEnds
    ) -> None:
        """One batched ``generate`` over ``prompts`` (see ``eotd.generation.Engine``)."""
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        enc = {k: v.to(self.loaded.device) for k, v in enc.items()}
        # Rows that stopped on a stop string are padded afterwards: the pad token ends them too.
        ends = {*self.end_ids, self.tokenizer.pad_token_id}
        logprobs = _StepLogprobs()
        self.loaded.model.generate(
            **enc,
            streamer=_RowStreamer(ends, rows, logprobs),
            logits_processor=LogitsProcessorList([logprobs]),
            **self._generate_kwargs(settings),
        )

    @torch.inference_mode()
    def score(
        self, prompts: Sequence[str], texts: Sequence[str], ended: Sequence[bool], batch: int = 16
    ) -> list[float | None]:
        """Mean log-probabilities of ``texts`` (see ``eotd.generation.Engine.score``) from
        teacher-forced forward passes, ``batch`` rows of similar length at a time."""
        pairs = continuation_ids(self.tokenizer, prompts, texts, ended)
        out: list[float | None] = [None] * len(pairs)
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), batch):
            chunk = order[start : start + batch]
            seqs = [pairs[i][0] + pairs[i][1] for i in chunk]
            width = max(map(len, seqs))
            ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
            device = self.loaded.device
            logits = self.loaded.model(input_ids=ids.to(device), attention_mask=mask.to(device))
            # log p(token) = its logit - logsumexp over the vocabulary, without a full softmax
            scores = logits.logits[:, :-1].float()
            picked = scores.gather(2, ids[:, 1:, None].to(device))[..., 0]
            chosen = (picked - torch.logsumexp(scores, dim=-1)).cpu()
            for row, i in enumerate(chunk):
                first = len(pairs[i][0]) - 1  # predicts the text's first token
                out[i] = mean(chosen[row, first : len(seqs[row]) - 1].tolist())
        return out
