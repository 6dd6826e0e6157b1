"""``MSPCLAW_MODEL``: from ``provider:model[,provider:model...]`` to a model chain.

``playbook`` (the default) means no LLM: the deterministic runner. Each provider's SDK is an
optional extra and reads its key from its usual environment variable (``OPENAI_API_KEY`` and
``OPENAI_BASE_URL`` for any OpenAI-compatible endpoint, ``ANTHROPIC_API_KEY``,
``GEMINI_API_KEY``/``GOOGLE_API_KEY``, ``OLLAMA_HOST``). A ``react:`` prefix wraps a model in the
text ReAct protocol for models without tool calling (``react:ollama:llama3``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from mspclaw.engine.models.base import Model
from mspclaw.engine.models.chain import ModelChain
from mspclaw.errors import ConfigError

PROVIDERS: dict[str, tuple[str, str, str]] = {
    # provider: (module, factory, extra to install)
    "openai": ("mspclaw.engine.models.openai", "OpenAIModel", "openai"),
    "anthropic": ("mspclaw.engine.models.anthropic", "AnthropicModel", "anthropic"),
    "gemini": ("mspclaw.engine.models.gemini", "GeminiModel", "gemini"),
    "ollama": ("mspclaw.engine.models.ollama", "OllamaModel", "ollama"),
}


def parse_spec(spec: str) -> list[tuple[bool, str, str]]:
    """``[(react, provider, model), ...]``; empty for ``playbook``. Raises :class:`ConfigError` on a bad spec."""
    spec = spec.strip()
    if spec in ("", "playbook"):
        return []
    out: list[tuple[bool, str, str]] = []
    for item in (part.strip() for part in spec.split(",")):
        react = item.startswith("react:")
        if react:
            item = item.removeprefix("react:")
        provider, sep, model = item.partition(":")
        if not sep or not model or provider not in PROVIDERS:
            raise ConfigError(f"MSPCLAW_MODEL: {item!r} is not provider:model; providers: {', '.join(PROVIDERS)} "
                              "(e.g. openai:gpt-4.1-mini,anthropic:claude-sonnet-4-5), or 'playbook' for no LLM")
        out.append((react, provider, model))
    return out


def build_model(spec: str, *, factories: dict[str, Callable[[str], Model]] | None = None) -> ModelChain | None:
    """The chain ``spec`` names, or ``None`` for the playbook model. ``factories`` replaces providers (tests)."""
    entries = parse_spec(spec)
    if not entries:
        return None
    models: list[Model] = []
    for react, provider, name in entries:
        factory = (factories or {}).get(provider) or _factory(provider)
        model = factory(name)
        if react:
            from mspclaw.engine.models.react import ReActModel

            model = ReActModel(model)
        models.append(model)
    return ModelChain(models)


def _factory(provider: str) -> Callable[[str], Model]:
    module_name, attr, extra = PROVIDERS[provider]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"MSPCLAW_MODEL names {provider}, but its SDK is not installed: "
                          f"pip install 'mspclaw[{extra}]' ({exc.name} is missing)") from exc
    factory: Callable[[str], Model] = getattr(module, attr)
    return factory
