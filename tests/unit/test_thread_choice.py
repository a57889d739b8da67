"""The embedded backend's choice of generating threads: the faster by measurement, the other tried again now and
then, so a machine whose load changes gets the faster choice back."""

from __future__ import annotations

from memagent.llm.backends.thread_choice import RETRY_EVERY, ThreadChoice


def run(choice: ThreadChoice, calls: int, per_token: dict[int, float]) -> list[int]:
    used = []
    for _ in range(calls):
        threads = choice.next()
        used.append(threads)
        choice.record(threads, per_token[threads] * 50, 50)
    return used


def test_each_choice_is_tried_then_the_faster_is_kept_and_the_other_retried_now_and_then() -> None:
    choice = ThreadChoice((2, 1))
    used = run(choice, 4 * RETRY_EVERY, {2: 0.017, 1: 0.026})  # a quiet machine: two threads are faster
    assert used[:2] == [2, 1]
    assert used.count(1) <= 1 + 4  # the first try, then once in every RETRY_EVERY calls
    assert used[-RETRY_EVERY:].count(2) == RETRY_EVERY - 1


def test_when_the_machine_gets_busy_the_choice_follows() -> None:
    choice = ThreadChoice((2, 1))
    run(choice, 2 * RETRY_EVERY, {2: 0.017, 1: 0.026})
    used = run(choice, 4 * RETRY_EVERY, {2: 0.080, 1: 0.030})  # another process took a CPU: two threads wait
    assert used[-RETRY_EVERY:].count(1) >= RETRY_EVERY - 1


def test_a_thread_count_set_by_the_user_is_the_only_choice_and_short_calls_say_nothing() -> None:
    choice = ThreadChoice((3,))
    assert {choice.next() for _ in range(20)} == {3}
    both = ThreadChoice((2, 1))
    both.record(2, 0.5, 2)  # two tokens: not a measurement
    assert both.next() == 2 and both.seconds_per_token == {}
    assert ThreadChoice((1, 1)).choices == (1,)  # a 1-CPU machine has one choice
