"""Readable names for new agents (``brisk-otter-42``)."""

from __future__ import annotations

import random
from typing import Protocol

from memagent.memory.rows import AgentRow

# fmt: off
_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "cosmic", "dapper", "eager", "fuzzy", "gentle", "happy",
    "hidden", "jolly", "keen", "lively", "lucky", "mellow", "misty", "nimble", "plucky", "quiet", "rapid",
    "rusty", "silver", "sleepy", "snowy", "steady", "sunny", "swift", "tidy", "witty", "zesty",
)
_ANIMALS = (
    "badger", "beaver", "bison", "crane", "falcon", "ferret", "gecko", "heron", "ibis", "koala", "lemur",
    "lynx", "marmot", "mole", "moose", "newt", "ocelot", "otter", "owl", "panda", "puffin", "quail",
    "raven", "seal", "sparrow", "stoat", "tapir", "toad", "walrus", "wombat", "yak", "zebra",
)
# fmt: on


class FindsAgents(Protocol):
    def find_agent(self, name: str) -> AgentRow | None: ...


def unique_agent_name(store: FindsAgents, rng: random.Random | None = None) -> str:
    """A readable name such as ``brisk-otter-42`` that no agent in ``store`` has yet.

    Deterministic for a seeded ``rng`` and a given database. After many collisions the number gets
    wider, so this always terminates."""
    rng = rng if rng is not None else random.Random()
    attempt = 0
    while True:
        high = 99 if attempt < 200 else 99_999
        name = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_ANIMALS)}-{rng.randint(10, high)}"
        if store.find_agent(name) is None:
            return name
        attempt += 1
