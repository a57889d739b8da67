"""What happens after a step, typed: run again on a heartbeat or system alert, wait for the user, or stop (and why).

The step decides; the loop in `Agent._run_steps` only matches on the decision. Nothing here is decoded from a
stored message: the kind and the reason of the next input travel as fields, beside the message that stores them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

from memagent.errors import BackendError, ContextOverflowError, LLMOutputError, StoreError
from memagent.events import ContextOverflow, Error, Event, Heartbeat, ModelError, SystemAlert
from memagent.messages import HeartbeatMessage, SystemAlertMessage

Emit: TypeAlias = Callable[[Event], None]  # where the agent reports what happens, as typed events


@dataclass(frozen=True)
class NextInput:
    """A heartbeat or a system alert for the next step to answer. `message` is the envelope to store, timed
    when the step decided on it; `reason` is its text, shown to the user once it is stored."""

    kind: Literal["heartbeat", "system_alert"]
    reason: str
    message: HeartbeatMessage | SystemAlertMessage

    @classmethod
    def heartbeat(cls, reason: str) -> NextInput:
        return cls("heartbeat", reason, HeartbeatMessage(reason))

    @classmethod
    def alert(cls, text: str) -> NextInput:
        return cls("system_alert", text, SystemAlertMessage(text))

    def event(self) -> Heartbeat | SystemAlert:
        return Heartbeat(self.reason) if self.kind == "heartbeat" else SystemAlert(self.reason)


@dataclass(frozen=True)
class RunAgain:
    """Step again, answering `input`."""

    input: NextInput


@dataclass(frozen=True)
class AwaitUser:
    """The turn is over: the agent waits for the user's next message."""


StopReason = Literal["step_limit", "heartbeats_paused", "error"]


@dataclass(frozen=True)
class Stopped:
    """The turn ended before the agent was done: too many steps, heartbeats paused, or an error (already
    reported to the user as an event); `detail` says more in words."""

    reason: StopReason
    detail: str = ""


NextStep: TypeAlias = RunAgain | AwaitUser | Stopped
TurnEnd: TypeAlias = AwaitUser | Stopped  # how a turn ends: a turn never ends in RunAgain


@dataclass(frozen=True)
class StepResult:
    """What one committed step leads to."""

    next: NextStep


def step_error(exc: LLMOutputError | BackendError | StoreError | ContextOverflowError) -> Error:
    """The error event for a step that failed and left nothing behind."""
    if isinstance(exc, StoreError):  # e.g. locked too long by another process
        return Error(f"{exc} (your message is saved; the interrupted step was not)")
    if isinstance(exc, ContextOverflowError):
        hint = "even after summarizing. Use a larger --context-length, or /pop long messages."
        return ContextOverflow(f"{exc}, {hint}", prompt_tokens=exc.prompt_tokens)
    return ModelError(str(exc), raw=getattr(exc, "raw", None))
