"""The terminal: the chat loops (loop.py), the slash-command table (commands.py) and how events look (render.py).

Empty on purpose: `memagent agents list` imports only render.py's `safe`, not the agent and prompt_toolkit."""
