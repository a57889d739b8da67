"""require_agent: the one door to an existing agent for `agents show/delete` and `load --agent`."""

from __future__ import annotations

import pytest

from memagent.cli.common import display_name, require_agent
from memagent.errors import ConfigError, UserError

HOSTILE = ["", ".", "..", "../../x", "/", "/etc/passwd", "a/b", "a\\b", ".hidden", "-rf", " a", "two\nlines",
           "\x1b[31mred", "a\x00", "\ud800", "caf\udce9", "a\u202eb", "x" * 65]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_name_that_breaks_the_rule_and_matches_no_agent_is_refused_with_the_rule(store, name):
    with pytest.raises(ConfigError) as raised:
        require_agent(store, name)
    message = str(raised.value)
    assert message.startswith("Invalid agent name") and "\n" not in message and "\x1b" not in message
    message.encode("utf-8")


def test_an_unknown_valid_name_names_the_agents_that_exist(store, make_agent):
    make_agent(agent="sam")
    with pytest.raises(UserError, match=r"^No agent named 'bob'\. Agents: sam\.$"):
        require_agent(store, "bob")


def test_an_existing_agent_with_a_legacy_name_is_found_by_its_exact_name(store, make_agent):
    agent, _ = make_agent(agent="sam")
    store._conn.exec_driver_sql("UPDATE agents SET name = '../legacy' WHERE name = 'sam'")
    assert require_agent(store, "../legacy").id == agent.agent_id
    with pytest.raises(ConfigError):
        require_agent(store, "../legac")  # only the exact name


def test_display_name_spells_out_what_is_not_printable():
    assert display_name("sam") == "sam"
    assert display_name("two\nlines") == "'two\\nlines'"
    assert display_name("\x1b[2J") == "'\\x1b[2J'"
    assert display_name("\ud800").encode("ascii")
    assert display_name("../x") == "'../x'"
