"""StepRunner: one step of the agent, from the model's call to what happens next.

The call is generated (CallGenerator), then run and stored in one transaction (History): the function's effects,
the assistant call and its result, a refreshed system message and the state all commit together or not at all.
Only then are the step's events emitted, so nothing the user saw can vanish with a crash. The step decides the
next step as a typed value: run again on a heartbeat or alert, or wait for the user.
"""

from __future__ import annotations

from typing import Any

from memagent.agent.context import ContextWindow
from memagent.agent.generate import CallGenerator
from memagent.agent.history import History
from memagent.agent.outcomes import AwaitUser, Emit, NextInput, NextStep, RunAgain, StepResult
from memagent.events import AssistantMessage, Event, FunctionCall, FunctionReturn, InnerThoughts
from memagent.functions.memory import SEARCH_FUNCTIONS
from memagent.functions.registry import HEARTBEAT_PARAM, AgentFunction, FunctionFailed, clip_arguments
from memagent.llm.backends.base import Completion
from memagent.memory.agent_memory import AgentMemory
from memagent.memory.versions import Cause
from memagent.messages import HEARTBEAT_FAILED, HEARTBEAT_REQUESTED, MEMORY_PRESSURE, AssistantCall, FunctionResult

RESULT_CHAR_LIMIT = 3000


class StepRunner:
    def __init__(
        self, history: History, context: ContextWindow, generator: CallGenerator, functions: dict[str, AgentFunction]
    ) -> None:
        self.history, self.context, self.generator, self.functions = history, context, generator, functions

    def run(self, emit: Emit) -> StepResult:
        """Generate a call, run it and store it in one transaction; report it only once it is committed."""
        history = self.history
        call, completion = self.generator.generate(emit, first_reply=not history.state.first_reply_done)
        args = dict(call.arguments)
        heartbeat = bool(args.pop(HEARTBEAT_PARAM, False)) or self._heartbeat_correction(call.name)
        shown: list[Event] = [
            InnerThoughts(call.inner_thoughts or "", tuple(call.repairs)),
            FunctionCall(call.name, args),
        ]
        with history.transaction() as tx:
            tools = AgentMemory(
                history.store,
                history.agent_id,
                history.core_memory,
                tx,
                on_send=lambda text: shown.append(AssistantMessage(text)),
                on_pause=self._pause_heartbeats,
            )
            ok, result = self._execute(call.name, args, tools)
            function = self.functions[call.name]
            stored_args = {**args, HEARTBEAT_PARAM: heartbeat} if function.takes_heartbeat else args
            call_id = history.add(tx, AssistantCall(call.inner_thoughts or "", call.name, clip_arguments(stored_args)))
            history.add(tx, FunctionResult(call.name, ok, result))
            if tools.memory_edited:
                history.refresh_system_message(tx)
            history.state.first_reply_done = True
            next_step = self._next_step(ok, heartbeat, completion)
            history.save(tx, Cause(call.name, message_id=call_id))
        shown.append(FunctionReturn(call.name, "OK" if ok else "Failed", result))
        for event in shown:
            emit(event)
        return StepResult(next_step)

    def _next_step(self, ok: bool, heartbeat: bool, completion: Completion) -> NextStep:
        state = self.history.state
        if not state.memory_pressure_alerted and self.context.over_warning(completion.prompt_tokens or 0):
            state.memory_pressure_alerted = True
            return RunAgain(NextInput.alert(MEMORY_PRESSURE))
        if not ok:
            return RunAgain(NextInput.heartbeat(HEARTBEAT_FAILED))
        if heartbeat:
            return RunAgain(NextInput.heartbeat(HEARTBEAT_REQUESTED))
        return AwaitUser()

    def _heartbeat_correction(self, name: str) -> bool:
        """Small models forget request_heartbeat after a user message: continue unless they replied."""
        messages = self.history.messages
        if name in ("send_message", "pause_heartbeats") or not messages:
            return False
        return messages[-1][1].kind == "user_message"

    def _execute(self, name: str, args: dict[str, Any], tools: AgentMemory) -> tuple[bool, str | None]:
        try:
            result = self.functions[name](tools, **args)
        except FunctionFailed as exc:
            return False, str(exc)
        except Exception as exc:  # a function bug must not end the session: report it to the model
            return False, f"{type(exc).__name__}: {exc}"
        text = None if result is None else str(result)
        if text and name not in SEARCH_FUNCTIONS and len(text) > RESULT_CHAR_LIMIT:
            text = text[:RESULT_CHAR_LIMIT] + f"... [NOTE: result truncated at {RESULT_CHAR_LIMIT} characters]"
        return True, text

    def _pause_heartbeats(self, until: float) -> None:
        self.history.state.heartbeats_paused_until = until
