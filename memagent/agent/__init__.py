"""The agent loop as collaborators with one-way dependencies (a newcomer reads it top to bottom):

    Agent (agent.py, the facade) -> step.py -> generate.py -> context.py -> history.py -> state.py
                                 -> edits.py -------------------------> history.py

`outcomes.py` types what a step leads to. `from memagent.agent import Agent` is the public entry.
"""

from memagent.agent.agent import Agent
from memagent.agent.outcomes import AwaitUser, Emit, NextInput, NextStep, RunAgain, StepResult, Stopped, TurnEnd
from memagent.agent.state import AgentConfig, AgentState

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentState",
    "AwaitUser",
    "Emit",
    "NextInput",
    "NextStep",
    "RunAgain",
    "StepResult",
    "Stopped",
    "TurnEnd",
]
