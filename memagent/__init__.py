"""memagent: a MemGPT-style memory agent for the terminal, on local LLMs."""

__version__ = "0.1.0"
