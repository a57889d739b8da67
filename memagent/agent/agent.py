"""The Agent facade: a turn stores the user's message first (it is never lost), then runs steps while the model asks
for a heartbeat. The work is done by its collaborators (see the package's docstring); everything the user sees goes
out as typed Events through `emit`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from memagent.agent.context import ContextWindow
from memagent.agent.edits import Edits
from memagent.agent.generate import CallGenerator
from memagent.agent.history import History
from memagent.agent.outcomes import AwaitUser, Emit, NextInput, RunAgain, StepResult, Stopped, TurnEnd, step_error
from memagent.agent.state import AgentConfig, AgentState
from memagent.agent.step import StepRunner
from memagent.errors import BackendError, ContextOverflowError, LLMOutputError, StoreError
from memagent.events import Error, Event, UserMessage, Warning
from memagent.functions.registry import AgentFunction
from memagent.llm.backends.base import Backend, Completion
from memagent.llm.wrappers.base import LLMChatCompletionWrapper
from memagent.memory.auto_recall import retrieve, token_counter
from memagent.memory.core import CoreMemory
from memagent.memory.store import Passage, Store
from memagent.memory.versions import MemoryVersion, Undone
from memagent.messages import HIDDEN_PREFIX, AgentMessage, Message
from memagent.messages import UserMessage as UserText
from memagent.prompts.template import SystemPromptTemplate
from memagent.text import clean_text

_PLACEHOLDER = "\ue000memagent-next-message\ue000"
"""Stands for the user's next message while its turn's opening is rendered (a private-use character: no one types
it, and JSON keeps it as it is)."""

STEP_ERRORS = (LLMOutputError, BackendError, StoreError, ContextOverflowError)


class Agent:
    def __init__(
        self, *, agent_id: int, name: str, state: AgentState, store: Store, backend: Backend,
        wrapper: LLMChatCompletionWrapper, functions: list[AgentFunction], template: SystemPromptTemplate,
        messages: list[tuple[int, AgentMessage]], config: AgentConfig | None = None, version: int = 0,
    ) -> None:
        self.agent_id, self.name, self.store, self.backend = agent_id, name, store, backend
        self.history = History(
            store=store, agent_id=agent_id, state=state, template=template, messages=messages, version=version
        )
        self.functions = {f.name: f for f in functions}  # one table, shared by the prompt and the step
        self._config = config or AgentConfig()
        self.context = ContextWindow(self.history, backend, wrapper, self.functions, self._config)
        self.generator = CallGenerator(self.context, self._config)
        self.stepper = StepRunner(self.history, self.context, self.generator, self.functions)
        self.edits = Edits(self.history)

    # -- turns ------------------------------------------------------------------------------------------
    def run_turn(self, text: str, emit: Emit) -> TurnEnd:
        """Handle one user message: store it first (it is never lost), then step until done."""
        if not text.strip():
            emit(Error("Empty message: type something to send, or /help for commands."))
            return Stopped("error", "empty message")
        text = clean_text(text)
        in_context = self.context.clip_user_text(text, emit)
        message = UserText(in_context, retrieved_memory=self._retrieve(in_context, emit))
        try:
            self._append_input(message, emit, UserMessage(text), stored_text=text)
        except StoreError as exc:
            emit(Error(f"Your message was not saved: {exc}"))
            return Stopped("error", str(exc))
        return self._run_steps(emit)

    def _retrieve(self, text: str, emit: Emit) -> tuple[str, ...]:
        """What auto recall attaches to the user's message (nothing when it is off or finds nothing); a failed
        search only costs the retrieved memory, never the message."""
        settings = self.config.auto_recall
        if settings is None:
            return ()
        in_context = {mid for mid, _ in self.history.messages}
        try:
            return retrieve(self.store, self.agent_id, text, exclude=in_context, settings=settings,
                            counter=token_counter(self.backend))
        except StoreError as exc:
            emit(Warning(f"Auto recall could not search memory ({exc}); your message goes without it."))
            return ()

    def heartbeat(self, emit: Emit, reason: str = HIDDEN_PREFIX + "Automated timer") -> TurnEnd:
        beat = NextInput.heartbeat(reason)
        try:
            self._append_input(beat.message, emit, beat.event())
        except StoreError as exc:
            emit(Error(f"The heartbeat was not saved: {exc}"))
            return Stopped("error", str(exc))
        return self._run_steps(emit)

    def _run_steps(self, emit: Emit) -> TurnEnd:
        for _ in range(self.config.max_steps_per_turn):
            try:
                result = self.step(emit)
                if isinstance(result.next, RunAgain):  # stored before the next step answers it
                    self._append_input(result.next.input.message, emit, result.next.input.event())
            except STEP_ERRORS as exc:
                emit(step_error(exc))  # a failed step left nothing behind: the turn stops here
                return Stopped("error", str(exc))
            if isinstance(result.next, AwaitUser | Stopped):
                return result.next
        limit = self.config.max_steps_per_turn
        emit(Warning(f"Stopped after {limit} steps in one turn; waiting for you."))
        return Stopped("step_limit", f"{limit} steps in one turn")

    def _append_input(self, message: AgentMessage, emit: Emit, event: Event, stored_text: str | None = None) -> None:
        self.history.append(message, stored_text)
        emit(event)

    def step(self, emit: Emit) -> StepResult:
        """One step: generate a call, run it and store it in one transaction, then report it."""
        return self.stepper.run(emit)

    def summarize(self, emit: Emit | None = None) -> bool:
        return self.context.summarize(emit)

    # -- edits from the REPL (each writes through to recall memory) -------------------------------------
    def pop(self, count: int = 3) -> int:
        return self.edits.pop(count)

    def retry(self, emit: Emit) -> bool:
        """Drop everything from the last user message on and send that message again."""
        text = self.edits.take_last_user_message()
        if text is not None:
            self.run_turn(text, emit)
        return text is not None

    def rethink(self, thoughts: str) -> bool:
        return self.edits.rethink(thoughts)

    def rewrite(self, text: str) -> bool:
        return self.edits.rewrite(text)

    def add_passages(self, texts: Sequence[str]) -> list[int]:
        return self.edits.add_passages(texts)

    def undo(self, version_id: int | None = None) -> Undone | None:
        """Undo the most recent core-memory change, or change ``version_id`` (see Edits.undo); None when there is
        no such change."""
        return self.edits.undo(version_id)

    def set_template_field(self, name: str, value: str) -> None:
        self.history.set_template_field(name, value)

    def set_wrapper(self, wrapper: LLMChatCompletionWrapper) -> None:
        self.generator.set_wrapper(wrapper)

    # -- reads ------------------------------------------------------------------------------------------
    def context_messages(self, extra: Sequence[AgentMessage] = ()) -> list[Message]:
        return self.context.messages(extra)

    def prompt(self, extra: Sequence[AgentMessage] = ()) -> str:
        return self.context.prompt(extra)

    def prefill(self) -> Callable[[], None]:
        """The work that readies the next turn while the user types: the prompt as it stands is rendered now, in the
        caller's thread (it reads the agent's state), and the returned callable, safe to run in another thread, has
        the backend evaluate it (Backend.prefill): the next turn then evaluates only the new message."""
        prompt, backend = self.next_turn_opening(), self.backend
        return lambda: backend.prefill(prompt)

    def next_turn_opening(self) -> str:
        """The prompt as it stands, followed by what every user message's turn starts with (the wrapper's user
        heading and the envelope up to the message's text): the part of the next turn's prompt known before the user
        presses Enter. Found by rendering a placeholder message and cutting at it, so it is right for any wrapper; a
        wrapper that doesn't show the placeholder gets the prompt as it stands. A backend keeps the longest common
        prefix, so an opening the next turn doesn't share (a message with retrieved memory, a slash command) costs
        nothing but its own evaluation."""
        placeholder = UserText(text=_PLACEHOLDER)
        opening = self.prompt([placeholder])
        cut = opening.find(_PLACEHOLDER)
        return opening[:cut] if cut > 0 else self.prompt()

    def shared_prefix(self, prompt: str) -> int:
        return self.context.shared_prefix(prompt)

    def recall_count(self) -> int:
        return self.history.recall_count()

    def archival_count(self) -> int:
        return self.history.archival_count()

    def first_passages(self, limit: int) -> list[Passage]:
        return self.history.first_passages(limit)

    def memory_versions(self, block: str | None = None, limit: int | None = None) -> list[MemoryVersion]:
        """Core-memory history (of one block), newest first."""
        return self.store.memory_versions(self.agent_id, block, limit=limit)

    @property
    def messages(self) -> list[tuple[int, Message]]:
        """The messages in context as stored (dicts), oldest first."""
        return [(mid, message.to_dict()) for mid, message in self.history.messages]

    @property
    def state(self) -> AgentState:
        return self.history.state

    @property
    def core_memory(self) -> CoreMemory:
        return self.history.core_memory

    @property
    def template(self) -> SystemPromptTemplate:
        return self.history.template

    @property
    def system_message(self) -> str:
        return self.history.system_message

    @property
    def schemas(self) -> list[dict[str, Any]]:
        return self.context.schemas

    @property
    def wrapper(self) -> LLMChatCompletionWrapper:
        return self.context.wrapper

    @property
    def last_completion(self) -> Completion | None:
        return self.generator.last_completion

    @property
    def config(self) -> AgentConfig:
        return self._config

    @config.setter
    def config(self, config: AgentConfig) -> None:
        self._config = self.context.config = self.generator.config = config

    @property
    def stream(self) -> bool:
        """Whether send_message's text is shown as it is generated (the REPL turns it on)."""
        return self.generator.stream

    @stream.setter
    def stream(self, on: bool) -> None:
        self.generator.stream = on
