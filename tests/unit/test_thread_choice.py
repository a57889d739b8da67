"""The embedded backend's choice of generating threads: measured a few tokens at a time, the faster kept, the other
tried again now and then (and dropped after one batch when it is much slower), so a machine whose load changes gets
the faster choice back, even in the middle of a reply."""

from __future__ import annotations

from memagent.llm.backends.thread_choice import GIVE_UP, RETRY_EVERY, SEGMENT_TOKENS, OtherLoad, ThreadChoice


def generate(choice: ThreadChoice, batches: int, per_token: dict[int, float], tokens: int = 2) -> list[int]:
    """The thread count each of ``batches`` batches ran with, each giving ``tokens`` tokens at ``per_token`` seconds."""
    used = []
    for _ in range(batches):
        threads = choice.current
        used.append(threads)
        choice.batch(per_token[threads] * tokens, tokens)
    return used


PER_SEGMENT = SEGMENT_TOKENS // 2  # batches of 2 tokens


def test_the_first_choice_runs_until_the_first_try_then_the_faster_is_kept_and_the_other_retried_now_and_then() -> None:
    choice = ThreadChoice((2, 1))
    used = generate(choice, 4 * RETRY_EVERY * PER_SEGMENT, {2: 0.017, 1: 0.026})  # quiet: two threads are faster
    first_try = RETRY_EVERY * PER_SEGMENT
    assert used[:first_try] == [2] * first_try  # a new agent's first reply is not slowed by a try
    assert used[first_try : first_try + PER_SEGMENT] == [1] * PER_SEGMENT  # then one thread is measured
    assert used.count(1) == PER_SEGMENT * 3  # then a segment in every RETRY_EVERY (the fourth would come next)
    assert used[-RETRY_EVERY * PER_SEGMENT :].count(2) == (RETRY_EVERY - 1) * PER_SEGMENT


def test_where_the_first_choice_is_slower_the_other_is_kept_once_measured() -> None:
    choice = ThreadChoice((2, 1))
    used = generate(choice, 3 * RETRY_EVERY * PER_SEGMENT, {2: 0.040, 1: 0.026})  # e.g. two hyperthreads of a core
    assert used[-2 * PER_SEGMENT :] == [1] * 2 * PER_SEGMENT


def test_when_the_machine_gets_busy_the_choice_follows_within_a_few_batches() -> None:
    choice = ThreadChoice((2, 1))
    generate(choice, (RETRY_EVERY + 2) * PER_SEGMENT, {2: 0.017, 1: 0.026})  # both measured, two threads faster
    assert choice.current == 2
    used = generate(choice, 3, {2: 0.200, 1: 0.030})  # another process took a CPU: two threads wait for each other
    assert used[-1] == 1  # switched within the segment's batches, in the middle of whatever reply it is
    assert generate(choice, 4 * RETRY_EVERY, {2: 0.200, 1: 0.030})[-SEGMENT_TOKENS:].count(1) >= SEGMENT_TOKENS - 1


def test_a_try_of_the_slower_choice_that_goes_badly_ends_after_one_batch() -> None:
    choice = ThreadChoice((1, 2))
    busy = {2: 0.030 * GIVE_UP * 3, 1: 0.030}
    used = generate(choice, 20 * RETRY_EVERY, busy)
    tries = [i for i, threads in enumerate(used) if threads == 2]
    assert tries  # two threads are tried again now and then
    assert all(used[i + 1] == 1 for i in tries if i + 1 < len(used))  # and each try is one batch long
    assert len(tries) <= 2 + len(used) // (RETRY_EVERY * SEGMENT_TOKENS // 2)  # the first try, then one a cycle


def test_a_thread_count_set_by_the_user_is_the_only_choice_and_empty_batches_say_nothing() -> None:
    choice = ThreadChoice((3,))
    assert set(generate(choice, 40, {3: 0.01})) == {3}
    both = ThreadChoice((2, 1))
    both.batch(0.5, 0)  # a batch that gave nothing (the reply ended): no measurement, no switch
    assert both.current == 2 and both.seconds_per_token == {}
    assert ThreadChoice((1, 1)).choices == (1,)  # a 1-CPU machine has one choice


def test_while_other_processes_hold_a_cpu_the_fewest_threads_generate_and_nothing_is_tried() -> None:
    load = [1.0]  # CPUs the other processes kept busy
    choice = ThreadChoice((2, 1), others=lambda: load[0], cpus=2)
    assert choice.start() == 1
    used = generate(choice, 10 * RETRY_EVERY, {2: 0.5, 1: 0.03})
    assert set(used) == {1}  # two threads never tried while the other CPU is taken
    load[0] = 0.1  # the other process ended
    used = generate(choice, 2 * SEGMENT_TOKENS, {2: 0.017, 1: 0.026})
    assert used[-1] == 2  # tried and, faster, kept
    assert choice.start() == 2  # the next call's prompt too
    load[0] = 0.9
    assert choice.start() == 1


def test_a_calls_prompt_never_runs_on_a_try_of_the_slower_choice() -> None:
    choice = ThreadChoice((2, 1))
    generate(choice, 2 * RETRY_EVERY * PER_SEGMENT, {2: 0.017, 1: 0.026})
    while choice.current != 1:  # run until a segment tries one thread again
        generate(choice, 1, {2: 0.017, 1: 0.026})
    assert choice.start() == 2


def test_other_load_is_the_busy_cpu_time_of_every_process_less_this_ones(tmp_path) -> None:
    stat = tmp_path / "stat"
    clock, own = [100.0], [5.0]

    def write(user: int, system: int, idle: int, steal: int = 0) -> None:
        stat.write_text(f"cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3 4\n")

    write(1000, 500, 9000)
    others = OtherLoad(stat, clock=lambda: clock[0], own=lambda: own[0], ticks_per_second=100)
    clock[0] += 2.0  # two seconds: this process used 1.0 CPU second, every process 3.0 (user 200 + steal 100 ticks)
    own[0] += 1.0
    write(1200, 500, 9100, steal=100)
    assert others() == 2.0 / 2.0  # one CPU's worth of others
    clock[0] += 0.01  # too short a look: the last value stands
    assert others() == 1.0
    assert OtherLoad(tmp_path / "missing")() is None  # no /proc/stat: nothing known, measuring alone decides
