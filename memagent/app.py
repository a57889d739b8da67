"""The composition root: turns Settings into a working Agent (store + backend + wrapper + preset).
Nothing below this module reads the environment, files of the user's home or global state."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

from memagent.agent import Agent
from memagent.agent.state import AgentConfig, AgentState
from memagent.errors import AgentExistsError, ConfigError
from memagent.functions.memory import builtin_functions
from memagent.functions.registry import AgentFunction
from memagent.llm.backends.base import Backend
from memagent.llm.wrappers.base import LLMChatCompletionWrapper
from memagent.llm.wrappers.detect import wrapper_for_chat_template
from memagent.llm.wrappers.registry import create_wrapper
from memagent.memory.auto_recall import AutoRecall
from memagent.memory.embed import FULL_TEXT_NOTICE, NO_PGVECTOR_NOTICE, Embedder, default_embedder
from memagent.memory.embed_worker import EmbeddingWorker
from memagent.memory.names import unique_agent_name
from memagent.memory.sqlite import MEMORY_PATH
from memagent.memory.store import Store
from memagent.messages import AgentMessage, boot_sequence, message_from_dict, now_text
from memagent.prompts.presets import (
    DEFAULT_PRESET,
    Library,
    Preset,
    builtin_fields,
    initial_core_memory,
    load_preset,
    load_template,
)
from memagent.prompts.template import SystemPromptTemplate
from memagent.settings import Settings
from memagent.text import check_name


@dataclass
class Session:
    agent: Agent
    created: bool
    store: Store
    backend: Backend
    cache_path: Path | None = None
    worker: EmbeddingWorker | None = None

    def restore_cache(self) -> int:
        """Backends that can (embedded) reload the agent's KV cache, so its first turn skips re-reading."""
        if self.cache_path is None or not self.backend.capabilities.kv_cache or not self.cache_path.is_file():
            return 0
        return self.backend.load_cache(self.cache_path)

    def prepare_prefix(self, on_evaluate: Callable[[int], None] | None = None) -> int:
        """Have the prompt's shared start ready before the first turn (a new agent starts from the one saved by an
        earlier agent; the first on this machine evaluates it, and `on_evaluate` hears so first)."""
        prompt = self.agent.prompt()
        return self.backend.prepare_prefix(prompt, self.agent.shared_prefix(prompt), on_evaluate)

    def close(self) -> None:
        try:
            if self.cache_path is not None and self.backend.capabilities.kv_cache:
                self.backend.save_cache(self.cache_path)
        except OSError:
            pass  # only a cache: the next start re-reads the prompt
        finally:
            if self.worker is not None:
                self.worker.stop()  # ends between two batches; rows it did not reach are embedded next time
            self.backend.close()
            self.store.close()


def open_store(settings: Settings) -> Store:
    """The SQLite file in the home, or the database --db / MEMAGENT_DB names (a path or a PostgreSQL URL)."""
    return Store(settings.database)


BACKLOG_NOTICE_ROWS = 2_000
"""Rows still to embed from which the chat's start suggests `agents reindex` (~50 ms of CPU each in the background)."""


def start_embedding(settings: Settings, store: Store, embedder: Embedder | None = None) -> EmbeddingWorker | None:
    """Hybrid search and the background worker that embeds new rows after each commit, when the embeddings extra
    is installed (``embedder`` None: the bundled e5 model) and the database keeps vectors; None and full-text search
    without either."""
    if not store.keeps_vectors:
        return None
    embedder = embedder or default_embedder()
    if embedder is None:
        return None
    store.use_embedder(embedder)
    if str(settings.database) == MEMORY_PATH:
        return None  # nobody else can open a private in-memory database: rows wait for `embed_pending`
    worker = EmbeddingWorker(lambda: Store(settings.database), embedder)
    store.on_commit(worker.wake)
    worker.start()
    return worker


def search_notice(store: Store) -> str | None:
    """The line the chat prints once at start about memory search: full text only without the extra; a large
    backlog of rows without vectors (a database from before embeddings) and how to embed it now."""
    if store.embedder is None:
        return FULL_TEXT_NOTICE if store.keeps_vectors else NO_PGVECTOR_NOTICE
    backlog = store.count_unembedded(store.embedder.model)
    if backlog < BACKLOG_NOTICE_ROWS:
        return None
    return (
        f"{backlog} stored rows are not embedded yet: search finds them by full text meanwhile, and they are embedded "
        "in the background; `memagent agents reindex` embeds them all now."
    )


def create_backend(settings: Settings) -> Backend:
    """Every backend, in process or a server, through the registry's one factory. Options left None mean
    the backend's default; the API key was kept by Settings for the openai backend only."""
    from memagent.llm.backends.registry import create_backend as create_registered_backend

    return create_registered_backend(
        settings.backend,
        endpoint=settings.endpoint,
        model=settings.backend_model,
        model_path=settings.model_path,
        context_length=settings.context_length,
        api_key=settings.api_key,
        cache_folder=settings.home / "cache",
        **settings.backend_settings,
    )


def constraint_notice(settings: Settings, backend: Backend) -> str | None:
    """The line the CLI prints once at start when this backend can't constrain output, so a user who sees
    a repaired or retried call knows why; None when output is constrained or nobody asked for it."""
    if not settings.constrain or backend.can_constrain:
        return None
    # A human types the output, and native function calling (openai) returns calls as structured data.
    if backend.capabilities.typed_by_person or backend.capabilities.native_function_calls:
        return None
    return f"{backend.name} can't constrain output here: malformed calls are repaired or retried instead."


DEFAULT_MODEL_HINT = (
    "The default model (SmolLM2-135M) is tiny: it shows how memagent works, not how well an agent can talk; it "
    "often repeats you and forgets. For real use give a 1-8B instruct GGUF with --model-path (README: Models)."
)


def default_model_hint(settings: Settings) -> str | None:
    """The line the CLI prints on the default model's first chat in this home (once: a marker file remembers),
    so a newcomer doesn't take the tiny model's replies for a broken agent; None otherwise."""
    if settings.backend != "embedded" or settings.model_path is not None:
        return None
    marker = settings.home / "default-model-hint-shown"
    if marker.exists():
        return None
    with suppress(OSError):  # a read-only home shows the hint on every start rather than never
        marker.touch()
    return DEFAULT_MODEL_HINT


def choose_wrapper(settings: Settings, backend: Backend) -> LLMChatCompletionWrapper:
    """--model if given; else the wrapper matching the GGUF's chat template; else the default."""
    constrained = settings.constrain and backend.can_constrain
    name = settings.model
    if name is None and backend.capabilities.model_metadata:
        name = wrapper_for_chat_template(backend.metadata().get("tokenizer.chat_template"))
    return create_wrapper(name, constrained=constrained, user_folder=settings.home / "wrappers")


def build_template(library: Library, preset: Preset, overrides: dict[str, str]) -> SystemPromptTemplate:
    template = load_template(library, preset, builtin_fields())
    for name, value in overrides.items():
        if name in template.field_names():
            template = template.with_field(name, value)
    return template


def choose_auto_recall(settings: Settings, preset: Preset) -> AutoRecall | None:
    """The preset's auto recall, unless --auto-recall (the preset's bounds, else the defaults) or --no-auto-recall
    says otherwise for this run."""
    if settings.auto_recall is None:
        return preset.auto_recall
    return (preset.auto_recall or AutoRecall()) if settings.auto_recall else None


def open_agent(
    settings: Settings, store: Store, backend: Backend, wrapper: LLMChatCompletionWrapper | None = None
) -> tuple[Agent, bool]:
    """Resume `settings.agent` if it exists, else create it (or a new agent with a readable name). Two
    processes creating the same name at once both end up on the one agent."""
    library = Library(settings.home)
    wrapper = wrapper or choose_wrapper(settings, backend)
    config = AgentConfig(verify_first_message=not settings.no_verify)
    name = check_name(settings.agent) if settings.agent is not None else None
    row = store.find_agent(name) if name else None
    if row is None:
        try:
            return _create_agent(settings, store, backend, wrapper, library, config), True
        except AgentExistsError:
            row = store.find_agent(name) if name else None
            if row is None:
                raise
    if settings.preset and settings.preset != row.state.get("preset"):
        raise ConfigError(
            f"Agent {row.name!r} uses preset {row.state.get('preset')!r}; --preset applies only to new agents."
        )
    state = AgentState.from_dict(row.state)
    preset = load_preset(library, state.preset)
    messages = [(m.id, message_from_dict(m.payload)) for m in store.get_messages(row.id, state.in_context)]
    template = build_template(library, preset, state.template_fields)
    config = replace(config, auto_recall=choose_auto_recall(settings, preset))
    parts = _AgentParts(store, backend, wrapper, _functions(preset), template, config)
    return parts.build(row.id, row.name, state, messages, row.version), False


@dataclass(frozen=True)
class _AgentParts:
    """What an agent is built from besides its stored row: the same for a new and a resumed agent."""

    store: Store
    backend: Backend
    wrapper: LLMChatCompletionWrapper
    functions: list[AgentFunction]
    template: SystemPromptTemplate
    config: AgentConfig

    def build(
        self, agent_id: int, name: str, state: AgentState, messages: list[tuple[int, AgentMessage]], version: int
    ) -> Agent:
        return Agent(
            agent_id=agent_id,
            name=name,
            state=state,
            store=self.store,
            backend=self.backend,
            wrapper=self.wrapper,
            functions=self.functions,
            template=self.template,
            messages=messages,
            config=self.config,
            version=version,
        )


def _functions(preset: Preset) -> list[AgentFunction]:
    try:
        return builtin_functions().select(preset.functions)
    except KeyError as exc:
        raise ConfigError(f"Preset {preset.source} names unknown function(s): {exc.args[0]}.") from exc
    except ValueError as exc:
        raise ConfigError(f"Preset {preset.source}: {exc}.") from exc


def _create_agent(
    settings: Settings,
    store: Store,
    backend: Backend,
    wrapper: LLMChatCompletionWrapper,
    library: Library,
    config: AgentConfig,
) -> Agent:
    preset = load_preset(library, settings.preset or DEFAULT_PRESET)
    config = replace(config, auto_recall=choose_auto_recall(settings, preset))
    functions = _functions(preset)
    template = build_template(library, preset, {})
    core = initial_core_memory(library, preset)
    stats = {"edit_timestamp": now_text(), "recall_count": 0, "archival_count": 0}
    state = AgentState(preset=preset.name, core_memory=core.to_dict(), memory_stats=stats)
    name = settings.agent or unique_agent_name(store)
    with store.transaction() as tx:
        row = tx.create_agent(name, state.to_dict())
        messages: list[tuple[int, AgentMessage]] = []
        for message in boot_sequence():
            messages.append((tx.add_message(row.id, message.role, message.searchable_text, message.to_dict()), message))
        state.in_context = [mid for mid, _ in messages]
        version = tx.save_agent_state(row.id, state.to_dict())
    parts = _AgentParts(store, backend, wrapper, functions, template, config)
    return parts.build(row.id, name, state, messages, version)


def cache_path(home: Path, agent_name: str) -> Path:
    """Where the embedded backend keeps an agent's KV cache: always a file directly in $MEMAGENT_HOME/cache."""
    folder = home / "cache"
    path = folder / f"{check_name(agent_name)}.kv"
    if path.parent != folder:  # the name rule makes this impossible; never write outside the home regardless
        raise ConfigError(f"Agent name {agent_name!r} can't be used as a file name.")
    return path


def open_session(settings: Settings) -> Session:
    store = open_store(settings)
    try:
        backend = create_backend(settings)
    except BaseException:
        store.close()
        raise
    try:
        backend.check_reachable()
        agent, created = open_agent(settings, store, backend)
    except BaseException:
        backend.close()
        store.close()
        raise
    session = Session(agent, created, store, backend, cache_path(settings.home, agent.name))
    session.worker = start_embedding(settings, store)
    if not created:
        session.restore_cache()
    return session
