"""The real-server fixtures live in servers.py; importing them here makes them visible to these tests."""

from servers import fresh_llama_server, llama_cpp_python_server, llama_server

__all__ = ["fresh_llama_server", "llama_cpp_python_server", "llama_server"]
