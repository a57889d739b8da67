"""The embedded backend's llama_cpp.Llama: llama-cpp-python's model and context, with the steps memagent's own
generation loop (lookup_decoding.py) takes one at a time, and grammar sampling that checks the sampled token first
(grammar_sampler.py). Everything here that reaches into llama-cpp-python's internals is in this one class."""

from __future__ import annotations

from typing import Any


def load_llama(**kwargs: Any) -> Any:
    """A llama_cpp.Llama with memagent's steps (see the module); ``kwargs`` are Llama's own."""
    import llama_cpp
    from llama_cpp import Llama, _internals

    from memagent.llm.backends.grammar_sampler import GrammarLastSampler

    class MemagentLlama(Llama):  # type: ignore[misc]  # llama_cpp is untyped
        def _init_sampler(self, *args: Any, grammar: Any = None, **options: Any) -> Any:
            free = super()._init_sampler(*args, grammar=None, **options)
            if grammar is None:
                return free
            constrained = _internals.LlamaSampler()
            constrained.add_grammar(self._model, grammar)
            return GrammarLastSampler(free, constrained, self._n_vocab)

        def new_sampler(self, *, temperature: float, repeat_penalty: float, grammar: Any) -> Any:
            """llama-cpp-python's sampler chain (top-k 40, top-p .95, min-p .05, then temperature), as
            create_completion builds it; with a grammar, the grammar-last sampler."""
            return self._init_sampler(temp=temperature, repeat_penalty=repeat_penalty, grammar=grammar)

        def keep_prefix(self, count: int) -> int:
            """Keep the first ``count`` evaluated tokens in the KV cache and drop the rest; returns how many are kept
            (0 if the cache can't be cut there, and then it is emptied)."""
            if count <= 0 or not self._ctx.kv_cache_seq_rm(-1, count, -1):
                self.reset()
                return 0
            self.n_tokens = count
            return count

        def eval_all(self, tokens: list[int]) -> None:
            """Evaluate ``tokens`` (at most n_batch) in one batch, keeping the logits of every one of them."""
            n_past = self.n_tokens
            self._batch.set_batch(batch=tokens, n_past=n_past, logits_all=True)
            self._ctx.decode(self._batch)
            self.input_ids[n_past : n_past + len(tokens)] = tokens
            self.n_tokens = n_past + len(tokens)

        def sample_at(self, sampler: Any, row: int) -> int:
            """Sample with ``sampler`` from the logits of the ``row``-th token of the last batch (-1: its last)."""
            return int(sampler.sample(self._ctx, row))

        def set_threads(self, threads: int) -> None:
            """Evaluate everything, prompts and generated tokens, with ``threads`` threads."""
            current = (getattr(self, "n_threads", 0), getattr(self, "n_threads_batch", 0))
            if current != (threads, threads):
                self.n_threads = self.n_threads_batch = threads
                self._ctx.set_n_threads(threads, threads)

        def is_end(self, token: int) -> bool:
            return bool(llama_cpp.llama_vocab_is_eog(self._model.vocab, token))

        def piece(self, token: int) -> bytes:
            piece: bytes = self.detokenize([token])
            return piece

    return MemagentLlama(**kwargs)
