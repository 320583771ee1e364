"""Upstream adapters, one module per wire format; `make_backend` picks the one a backend's `kind` names.

See backends/base.py for the contract every adapter keeps.
"""

from __future__ import annotations

from backends.anthropic import AnthropicBackend
from backends.base import Backend
from backends.openai import AzureBackend, OpenAIBackend
from router.config import BackendSpec, ConfigError

KINDS: dict[str, type[Backend]] = {"openai": OpenAIBackend, "azure": AzureBackend, "anthropic": AnthropicBackend}


def make_backend(spec: BackendSpec) -> Backend:
    cls = KINDS.get(spec.kind)
    if cls is None:
        raise ConfigError(f"backend {spec.name!r}: kind {spec.kind!r} has no adapter in this version "
                          f"(available: {', '.join(sorted(KINDS))})")
    return cls(spec)
