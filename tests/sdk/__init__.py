"""The openai/anthropic SDKs' own generated API tests, run through the router against Prism mocks."""
