"""ai-router: an OpenAI-compatible reverse proxy that sends every request to the most cost-effective LLM."""

__version__ = "0.1.0"
