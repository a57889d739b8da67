"""The deadline against a real llama.cpp server (issue 16): a generation still running at the deadline is
cut off with one line, and the server, which notices the client has gone, answers the next call at once.
A call nobody watches is streamed internally yet reports what a non-streamed answer would."""

from __future__ import annotations

import pytest
from servers import RunningServer

from memagent.errors import BackendError
from memagent.llm.backends.llamacpp import LlamaCppBackend

pytestmark = pytest.mark.real_server

PROMPT = "<|im_start|>user\nTell me a very long story.<|im_end|>\n<|im_start|>assistant\n"


def test_a_generation_still_running_at_the_deadline_is_cut_and_the_server_keeps_serving(
    fresh_llama_server: RunningServer,
) -> None:
    # ignore_eos: the model can't end early, so 4000 tokens take minutes on a CPU, far past the 1 s deadline.
    endless = LlamaCppBackend(fresh_llama_server.url, timeout=1, ignore_eos=True)
    with endless, pytest.raises(BackendError) as caught:
        endless.complete(PROMPT, max_tokens=4000)
    message = str(caught.value)
    assert "\n" not in message and f"{fresh_llama_server.url}/completion" in message, message
    assert "within the 1 s deadline" in message and "--timeout SECONDS" in message, message
    # One slot: had the cut generation kept running, this call would wait minutes (and hit its own limits).
    with LlamaCppBackend(fresh_llama_server.url) as backend:
        done = backend.complete(PROMPT, max_tokens=8)
    assert done.text and done.completion_tokens and done.completion_tokens <= 8, done


def test_a_call_nobody_watches_streams_and_keeps_the_servers_numbers(llama_server: RunningServer) -> None:
    with LlamaCppBackend(llama_server.url) as backend:
        done = backend.complete(PROMPT, max_tokens=6)
    assert done.finish_reason == "length" and done.completion_tokens == 6, done
    assert done.prompt_tokens and done.prompt_tokens_evaluated is not None, done
    assert done.timings.get("predicted_n") == 6, done
