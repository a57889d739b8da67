"""Following send_message's text while the call streams."""

from fakes import ScriptedBackend, call, reply

from memagent.llm.stream import ArgumentStreamer


def feed_all(text: str, size: int) -> str:
    streamer = ArgumentStreamer()
    return "".join(streamer.feed(text[i:i + size]) for i in range(0, len(text), size))


def test_the_message_is_decoded_piece_by_piece_whatever_the_split():
    message = 'He said "hi"\nthen left éé \\o/ ✓'
    raw = reply(message)  # json.dumps escapes quotes, newlines, backslashes and non-ASCII as \uXXXX
    for size in (1, 2, 3, 7, 1000):
        assert feed_all(raw, size) == message


def test_a_surrogate_pair_is_one_character_whatever_the_split():
    # ASCII-only JSON writes an emoji as two escapes; decoded one by one they were two lone surrogates,
    # which the terminal can't print
    raw = '{"function": "send_message", "params": {"message": "a\\ud83d\\ude00b"}}'
    for size in range(1, 14):
        assert feed_all(raw, size) == "a\U0001f600b"


def test_what_the_streamer_shows_is_clean_text():
    raw = '{"function": "send_message", "params": {"message": "a\\ud800b\\u0000c\x00d\\udc00"}}'
    for size in (1, 5, 1000):
        assert feed_all(raw, size) == "a\ufffdbcd\ufffd"


def test_other_functions_and_other_string_fields_are_not_streamed():
    assert feed_all(call("archival_memory_insert", thoughts="x", content="secret"), 1) == ""
    assert feed_all('{"function": "send_message", "params": {"inner_thoughts": "hmm", "message": "ok"}}', 4) == "ok"


def test_the_agent_emits_deltas_that_add_up_to_the_message(make_agent, events):
    agent, _ = make_agent(backend=ScriptedBackend([reply("Hello there, Brad")]))
    agent.stream = True
    agent.run_turn("hi", events)
    assert "".join(e.text for e in events.of("assistant_message_delta")) == "Hello there, Brad"
    assert [e.text for e in events.of("assistant_message")] == ["Hello there, Brad"]
