"""Grammar-constrained sampling that checks the sampled token first (the embedded backend's sampler).

llama-cpp-python puts the grammar into its sampler chain, so for every generated token llama.cpp checks every token
of the vocabulary against the grammar (49,152 for SmolLM2): ~8 ms a token against ~0.6 ms without a grammar, about
half a second of a 60-token turn (bench/turn_latency.py). But the token the model would pick anyway is almost always
one the grammar allows (the model writes the JSON the grammar describes). So, as llama.cpp's own common sampler does:
sample as if unconstrained, check that one token against the grammar, and only if the grammar rejects it sample
again with the grammar applied to the whole vocabulary. No token outside the grammar is ever returned.

Both chains see the same penalties, top-k/top-p/min-p and temperature; only the accepted token is fed back to the
penalty history and the grammar's state.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any


class GrammarLastSampler:
    """Duck-types llama-cpp-python's LlamaSampler where `Llama.sample` uses it: `sample(ctx, idx)`."""

    def __init__(self, free: Any, grammar: Any, n_vocab: int) -> None:
        from llama_cpp import _internals

        self.free, self.grammar, self.n_vocab = free, grammar, n_vocab
        self.candidates = _internals.LlamaTokenDataArray(n_vocab=n_vocab)
        self.rejections = 0  # tokens the grammar refused, resampled under it (for tests and the benchmark)

    def sample(self, ctx: Any, idx: int = -1) -> int:
        import llama_cpp
        import numpy as np

        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx.ctx, idx), shape=(self.n_vocab,))
        token = self._pick(logits, constrained=False)
        if not self._allowed(token):
            self.rejections += 1
            token = self._pick(logits, constrained=True)
        llama_cpp.llama_sampler_accept(self.free.sampler, token)
        llama_cpp.llama_sampler_accept(self.grammar.sampler, token)
        return token

    def _pick(self, logits: Any, *, constrained: bool) -> int:
        import llama_cpp

        candidates = self.candidates
        candidates.copy_logits(logits)
        array = ctypes.byref(candidates.candidates)
        if constrained:
            llama_cpp.llama_sampler_apply(self.grammar.sampler, array)
        llama_cpp.llama_sampler_apply(self.free.sampler, array)
        return int(candidates.candidates.data[candidates.candidates.selected].id)

    def _allowed(self, token: int) -> bool:
        import llama_cpp

        one = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 1.0, 0.0))
        single = llama_cpp.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(self.grammar.sampler, ctypes.byref(single))
        return not math.isinf(one[0].logit)

    def close(self) -> None:
        self.free.close()
        self.grammar.close()

