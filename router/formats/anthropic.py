"""Chat completions ⇄ Anthropic Messages: requests, JSON answers, stream events, usage and stop reasons.

Four directions, each a function or a small per-request translator:

    chat_to_messages(body)          a chat request for a `kind: anthropic` backend
    message_to_chat(msg)            its JSON answer, back to a chat.completion
    MessagesToChat                  its SSE events, one by one, to chat.completion.chunk dicts
    messages_to_chat(body)          a `POST /v1/messages` request for a chat-only backend
    chat_to_message(completion)     that backend's chat.completion, as an Anthropic Message
    ChatToMessages                  its chat chunks, one by one, to Anthropic SSE events

Mapping notes (docs/configuration.md has the user-facing table):
- system and developer messages become `system`; tool results become `tool_result` blocks of a user turn;
  consecutive turns of one role are merged into one (Anthropic wants alternating turns);
- OpenAI's `tool_calls[].index` counts tool calls only, Anthropic's block `index` counts every block
  (text and thinking too): the stream translators keep the mapping;
- `reasoning_effort` asks for extended thinking (budget below), `thinking` blocks come back as
  `reasoning_content` (the field vLLM, DeepSeek and others use) and vice versa;
- usage: `prompt_tokens` = input + cache read + cache write tokens, `cached_tokens` = cache reads; the
  Anthropic fields ride along so cost can price cache writes.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from router.errors import InvalidRequest
from router.formats.events import DONE, encode, encode_data

DEFAULT_MAX_TOKENS = 4096
THINKING_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}
FINISH_FROM_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
STOP_FROM_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# chat fields with no Messages counterpart that do not change what the answer is made of: dropped
DROPPED_CHAT_FIELDS = frozenset({
    "seed", "presence_penalty", "frequency_penalty", "logit_bias", "store", "metadata", "service_tier",
    "stream_options", "prompt_cache_key", "safety_identifier", "verbosity",
})


# ---------------------------------------------------------------- chat request → Messages request


def chat_to_messages(body: dict[str, Any]) -> dict[str, Any]:
    """A chat completions request as a Messages request (the caller sets `model`)."""
    for key in ("audio", "prediction", "web_search_options"):
        if body.get(key) is not None:
            raise _unsupported(key)
    if (body.get("n") or 1) != 1:
        raise _unsupported("n", "n > 1")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise _unsupported("logprobs")
    modalities = body.get("modalities")
    if isinstance(modalities, list) and any(m != "text" for m in modalities):
        raise _unsupported("modalities", "non-text modalities")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, m in enumerate(body.get("messages") or ()):
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(m.get("content"), f"messages[{i}].content"))
        elif role == "user":
            _append(turns, "user", _user_blocks(m.get("content"), f"messages[{i}].content"))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(m, i))
        elif role in ("tool", "function"):
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": str(m.get("tool_call_id") or m.get("name") or ""),
                "content": _text_of(m.get("content"), f"messages[{i}].content"),
            }
            _append(turns, "user", [result])
        else:
            raise InvalidRequest(f"Invalid 'messages[{i}].role': {role!r}.", param=f"messages[{i}].role")
    out: dict[str, Any] = {}
    if system:
        out["system"] = "\n\n".join(system)
    out["messages"] = turns
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    out["max_tokens"] = max_tokens or DEFAULT_MAX_TOKENS
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    t = body.get("temperature")
    if t is not None:
        out["temperature"] = min(float(t), 1.0)  # OpenAI's range is 0..2, Anthropic's 0..1
    for key in ("top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    tools = body.get("tools") or body.get("functions")
    if tools:
        out["tools"] = [_tool_to_anthropic(t, i) for i, t in enumerate(tools)]
    choice = _tool_choice_to_anthropic(body.get("tool_choice", body.get("function_call")))
    if body.get("parallel_tool_calls") is False and tools:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        out["tool_choice"] = choice
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") == "json_schema":
        schema = (rf.get("json_schema") or {}).get("schema") or {"type": "object"}
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif isinstance(rf, dict) and rf.get("type") == "json_object":
        raise _unsupported("response_format", "response_format json_object (use json_schema)")
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    thinking = body.get("thinking")  # the Anthropic field itself, as several gateways accept it
    if thinking is None:
        effort = body.get("reasoning_effort")
        if effort in THINKING_BUDGET:
            thinking = {"type": "enabled", "budget_tokens": THINKING_BUDGET[effort]}
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = int(thinking.get("budget_tokens") or THINKING_BUDGET["low"])
        if out["max_tokens"] <= budget:  # thinking counts towards max_tokens: keep room for the answer
            out["max_tokens"] = budget + out["max_tokens"]
    if thinking is not None:
        out["thinking"] = thinking
    if body.get("stream") is True:
        out["stream"] = True
    return out


def _unsupported(param: str, what: str | None = None) -> InvalidRequest:
    return InvalidRequest(
        f"{what or param!s} is not supported by Anthropic backends (the router translates this request "
        f"to the Messages API).", param=param, code="unsupported_parameter",
    )


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        prev = turns[-1]["content"]
        if role == "user" and blocks[0]["type"] == "tool_result" and prev and prev[-1]["type"] != "tool_result":
            turns.append({"role": role, "content": blocks})  # tool results lead their user turn
            return
        prev.extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _text_of(content: Any, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
            elif isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                raise InvalidRequest(f"Images are not allowed in '{param}' here.", param=param)
        return "\n".join(out)
    raise InvalidRequest(f"Invalid type for '{param}'.", param=param, code="invalid_type")


def _user_blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        return [{"type": "text", "text": _text_of(content, param)}]
    out: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else "text"
        if isinstance(part, str):
            out.append({"type": "text", "text": part})
        elif kind == "text":
            out.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            iu = part.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu
            out.append({"type": "image", "source": _image_source(str(url or ""), f"{param}[{j}]")})
        elif kind == "file":
            f = part.get("file") or {}
            data = str(f.get("file_data") or "")
            if not data.startswith("data:application/pdf;base64,"):
                raise _unsupported(f"{param}[{j}]", "file parts other than base64 PDF data")
            out.append({"type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": data.split(",", 1)[1]}})
        else:
            raise _unsupported(f"{param}[{j}]", f"content part type {kind!r}")
    return out


def _image_source(url: str, param: str) -> dict[str, Any]:
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media = head[5:].split(";", 1)[0] or "image/png"
        if ";base64" not in head:
            raise InvalidRequest(f"Invalid image data URL in '{param}': expected base64.", param=param)
        return {"type": "base64", "media_type": media, "data": data}
    if url.startswith(("http://", "https://")):
        return {"type": "url", "url": url}
    raise InvalidRequest(f"Invalid image URL in '{param}'.", param=param)


def _assistant_blocks(m: dict[str, Any], i: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    reasoning = m.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning and isinstance(m.get("reasoning_signature"), str):
        out.append({"type": "thinking", "thinking": reasoning, "signature": m["reasoning_signature"]})
    text = _text_of(m.get("content"), f"messages[{i}].content")
    if text:
        out.append({"type": "text", "text": text})
    calls = m.get("tool_calls") or ([{"id": "call_0", "function": m["function_call"]}] if m.get("function_call")
                                     else [])
    for j, c in enumerate(calls):
        f = c.get("function") or {}
        out.append({"type": "tool_use", "id": str(c.get("id") or f"call_{j}"), "name": str(f.get("name", "")),
                    "input": _arguments(f.get("arguments"), f"messages[{i}].tool_calls[{j}].function.arguments")})
    return out


def _arguments(args: Any, param: str) -> Any:
    if isinstance(args, dict):
        return args
    if not args:
        return {}
    try:
        value = orjson.loads(args)
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"Invalid '{param}': not valid JSON.", param=param) from None
    return value if isinstance(value, dict) else {"value": value}


def _tool_to_anthropic(t: dict[str, Any], i: int) -> dict[str, Any]:
    if not isinstance(t, dict):
        raise InvalidRequest(f"Invalid type for 'tools[{i}]'.", param=f"tools[{i}]")
    if t.get("type", "function") != "function":
        raise _unsupported(f"tools[{i}].type", f"tool type {t.get('type')!r}")
    f = t.get("function", t)
    out: dict[str, Any] = {"name": str(f.get("name", "")),
                           "input_schema": f.get("parameters") or {"type": "object", "properties": {}}}
    if f.get("description"):
        out["description"] = str(f["description"])
    return out


def _tool_choice_to_anthropic(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if name:
            return {"type": "tool", "name": str(name)}
    raise InvalidRequest("Invalid 'tool_choice'.", param="tool_choice")


# ---------------------------------------------------------------- Messages answer → chat


def usage_to_chat(u: dict[str, Any] | None) -> dict[str, Any]:
    """Anthropic usage as OpenAI chat usage (the Anthropic cache fields kept alongside)."""
    u = u or {}
    inp = int(u.get("input_tokens") or 0)
    read = int(u.get("cache_read_input_tokens") or 0)
    write = int(u.get("cache_creation_input_tokens") or 0)
    out = int(u.get("output_tokens") or 0)
    prompt = inp + read + write
    return {
        "prompt_tokens": prompt,
        "completion_tokens": out,
        "total_tokens": prompt + out,
        "prompt_tokens_details": {"cached_tokens": read},
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
    }


def usage_from_chat(u: dict[str, Any] | None) -> dict[str, Any]:
    """OpenAI chat usage as Anthropic usage (cached prompt tokens are cache reads)."""
    u = u or {}
    details = u.get("prompt_tokens_details")
    read = int((details.get("cached_tokens") if isinstance(details, dict) else 0) or 0)
    prompt = int(u.get("prompt_tokens") or 0)
    write = int(u.get("cache_creation_input_tokens") or 0)
    return {
        "input_tokens": max(prompt - read - write, 0),
        "output_tokens": int(u.get("completion_tokens") or 0),
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
    }


def message_to_chat(msg: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Message as a chat.completion."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in msg.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            thinking.append(block.get("thinking", ""))
        elif kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"),
                                       "arguments": orjson.dumps(block.get("input") or {}).decode()}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    return {
        "id": str(msg.get("id") or "msg"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": msg.get("model"),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": FINISH_FROM_STOP.get(msg.get("stop_reason") or "end_turn", "stop")}],
        "usage": usage_to_chat(msg.get("usage")),
    }


class MessagesToChat:
    """Anthropic stream events in, chat.completion.chunk dicts out, one event at a time.

    `feed(name, data)` returns the chunks an event makes (often none: pings, block stops); `usage` holds the
    Anthropic usage seen so far (message_start's input and cache counts, message_delta's output count)."""

    __slots__ = ("base", "block_tool", "created", "finish", "include_usage", "model", "msg_id", "tools", "usage")

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.msg_id = "msg"
        self.model: str | None = None
        self.created = int(time.time())
        self.block_tool: dict[int, int] = {}  # Anthropic block index → OpenAI tool call index
        self.tools = 0
        self.usage: dict[str, Any] = {}
        self.finish: str | None = None
        self.base: dict[str, Any] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self.base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def feed(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        kind = ev.get("type")
        if kind == "content_block_delta":
            d = ev.get("delta") or {}
            dk = d.get("type")
            if dk == "text_delta":
                return [self._chunk({"content": d.get("text", "")})]
            if dk == "input_json_delta":
                k = self.block_tool.get(ev.get("index", -1))
                if k is None:
                    return []
                args = {"arguments": d.get("partial_json", "")}
                return [self._chunk({"tool_calls": [{"index": k, "function": args}]})]
            if dk == "thinking_delta":
                return [self._chunk({"reasoning_content": d.get("thinking", "")})]
            return []  # signature_delta, citations_delta
        if kind == "content_block_start":
            block = ev.get("content_block") or {}
            if block.get("type") == "tool_use":
                k = self.block_tool[ev.get("index", len(self.block_tool))] = self.tools
                self.tools += 1
                call = {"index": k, "id": block.get("id"), "type": "function",
                        "function": {"name": block.get("name"), "arguments": ""}}
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "message_start":
            m = ev.get("message") or {}
            self.msg_id = str(m.get("id") or "msg")
            self.model = m.get("model")
            self.usage.update({k: v for k, v in (m.get("usage") or {}).items() if v is not None})
            self.base = {"id": self.msg_id, "object": "chat.completion.chunk", "created": self.created,
                         "model": self.model}
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (ev.get("usage") or {}).items() if v is not None})
            stop = (ev.get("delta") or {}).get("stop_reason")
            self.finish = FINISH_FROM_STOP.get(stop or "end_turn", "stop")
            return [self._chunk({}, self.finish)]
        if kind == "message_stop":
            if self.include_usage:
                return [{**self.base, "choices": [], "usage": usage_to_chat(self.usage)}]
            return []
        return []  # ping, content_block_stop


# ---------------------------------------------------------------- Messages request → chat request


def messages_to_chat(body: dict[str, Any], max_tokens_field: str = "max_tokens") -> dict[str, Any]:
    """A `POST /v1/messages` request as a chat completions request (the caller sets `model`)."""
    msgs: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        msgs.append({"role": "system", "content": _system_text(system)})
    for i, m in enumerate(body.get("messages") or ()):
        role = m.get("role")
        content = m.get("content")
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{i}.role: expected user or assistant", param=f"messages.{i}.role")
        if isinstance(content, str):
            msgs.append({"role": role, "content": content})
        elif role == "user":
            msgs.extend(_user_turn_to_chat(content or [], i))
        else:
            msgs.append(_assistant_turn_to_chat(content or [], i))
    out: dict[str, Any] = {"messages": msgs}
    if body.get("max_tokens") is not None:
        out[max_tokens_field] = body["max_tokens"]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool_to_chat(t, i) for i, t in enumerate(tools)]
    tc = body.get("tool_choice")
    if isinstance(tc, dict):
        kind = tc.get("type")
        out["tool_choice"] = ({"type": "function", "function": {"name": tc.get("name")}} if kind == "tool"
                              else {"any": "required", "none": "none"}.get(kind or "auto", "auto"))
        if tc.get("disable_parallel_tool_use") is True:
            out["parallel_tool_calls"] = False
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = int(thinking.get("budget_tokens") or 0)
        out["reasoning_effort"] = "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"
    fmt = (body.get("output_config") or {}).get("format") if isinstance(body.get("output_config"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["response_format"] = {"type": "json_schema",
                                  "json_schema": {"name": "output", "schema": fmt.get("schema") or {}}}
    user = (body.get("metadata") or {}).get("user_id") if isinstance(body.get("metadata"), dict) else None
    if user:
        out["user"] = str(user)
    if body.get("stream") is True:
        out["stream"] = True
    return out


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    raise InvalidRequest("system: expected a string or a list of text blocks", param="system")


def _block_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return "" if content is None else str(content)


def _user_turn_to_chat(blocks: list[Any], i: int) -> list[dict[str, Any]]:
    """A user turn: its tool results first (one `tool` message each), then the rest as one user message."""
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, b in enumerate(blocks):
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(b.get("text", ""))})
        elif kind == "image":
            src = b.get("source") or {}
            if src.get("type") == "base64":
                url = f"data:{src.get('media_type', 'image/png')};base64,{src.get('data', '')}"
            elif src.get("type") == "url":
                url = str(src.get("url", ""))
            else:
                raise InvalidRequest(f"messages.{i}.content.{j}.source: unsupported image source",
                                     param=f"messages.{i}.content.{j}.source")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "tool_result":
            text = _block_text(b.get("content"))
            if b.get("is_error"):
                text = f"Error: {text}"
            tools.append({"role": "tool", "tool_call_id": str(b.get("tool_use_id", "")), "content": text})
        else:
            raise InvalidRequest(
                f"messages.{i}.content.{j}.type: {kind!r} blocks are not supported on this backend "
                f"(the router translates this request for an OpenAI-format model)",
                param=f"messages.{i}.content.{j}.type",
            )
    out = tools
    if parts:
        simple = all(p["type"] == "text" for p in parts)
        out = [*tools, {"role": "user", "content": "\n".join(p["text"] for p in parts) if simple else parts}]
    return out


def _assistant_turn_to_chat(blocks: list[Any], i: int) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    reasoning: list[str] = []
    for b in blocks:
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text":
            texts.append(str(b.get("text", "")))
        elif kind == "tool_use":
            calls.append({"id": str(b.get("id", "")), "type": "function",
                          "function": {"name": str(b.get("name", "")),
                                       "arguments": orjson.dumps(b.get("input") or {}).decode()}})
        elif kind == "thinking":
            reasoning.append(str(b.get("thinking", "")))
        # redacted_thinking: nothing a chat model can use
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        msg["tool_calls"] = calls
    if reasoning:
        msg["reasoning_content"] = "".join(reasoning)
    return msg


def _tool_to_chat(t: Any, i: int) -> dict[str, Any]:
    if not isinstance(t, dict) or t.get("type") not in (None, "custom"):
        kind = t.get("type") if isinstance(t, dict) else None
        raise InvalidRequest(
            f"tools.{i}: server tool {kind!r} is not supported on this backend (only client tools with "
            f"input_schema are; the router translates this request for an OpenAI-format model)",
            param=f"tools.{i}.type",
        )
    f: dict[str, Any] = {"name": str(t.get("name", "")), "parameters": t.get("input_schema") or {"type": "object"}}
    if t.get("description"):
        f["description"] = str(t["description"])
    return {"type": "function", "function": f}


# ---------------------------------------------------------------- chat answer → Message


def chat_to_message(completion: dict[str, Any], model: str | None = None) -> dict[str, Any]:
    """A chat.completion as an Anthropic Message."""
    choices = completion.get("choices") or [{}]
    c = choices[0]
    m = c.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = m.get("reasoning_content") or m.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = m.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text, "citations": None})
    for tc in m.get("tool_calls") or ():
        f = tc.get("function") or {}
        content.append({"type": "tool_use", "id": str(tc.get("id") or ""), "name": str(f.get("name", "")),
                        "input": _lenient_arguments(f.get("arguments"))})
    finish = c.get("finish_reason") or "stop"
    return {
        "id": _msg_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model or completion.get("model"),
        "content": content,
        "stop_reason": STOP_FROM_FINISH.get(finish, "end_turn"),
        "stop_sequence": None,
        "usage": usage_from_chat(completion.get("usage")),
    }


def _msg_id(raw: Any) -> str:
    s = str(raw or "")
    return s if s.startswith("msg_") else "msg_" + (s or "router")


def _lenient_arguments(args: Any) -> Any:
    if isinstance(args, dict):
        return args
    try:
        v = orjson.loads(args or "{}")
    except orjson.JSONDecodeError:
        return {"_raw_arguments": args}
    return v if isinstance(v, dict) else {"value": v}


class ChatToMessages:
    """chat.completion.chunk dicts in, Anthropic SSE event bytes out, one chunk at a time.

    Anthropic has one open content block at a time: a text, thinking or tool_use block opens when its first
    delta arrives and closes when another kind starts or the answer ends. The `message_delta` (stop reason,
    usage) waits for the chat stream's end, because OpenAI sends usage after the finish reason."""

    __slots__ = ("block", "blocks", "finish", "model", "open_kind", "started", "tool_blocks", "usage")

    def __init__(self, model: str | None = None) -> None:
        self.model = model
        self.started = False
        self.blocks = 0  # blocks opened so far (the next block's index)
        self.block = -1  # the open block's index
        self.open_kind: str | None = None
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool call index → Anthropic block index
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self.started = True
        msg = {"id": _msg_id(chunk.get("id")), "type": "message", "role": "assistant",
               "model": self.model or chunk.get("model"), "content": [], "stop_reason": None,
               "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
        return encode("message_start", {"type": "message_start", "message": msg})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.block = self.blocks
        self.blocks += 1
        self.open_kind = kind
        return out + encode("content_block_start",
                            {"type": "content_block_start", "index": self.block, "content_block": block})

    def _close(self) -> bytes:
        if self.open_kind is None:
            return b""
        self.open_kind = None
        return encode("content_block_stop", {"type": "content_block_stop", "index": self.block})

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return encode("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def feed(self, chunk: dict[str, Any]) -> bytes:
        out = b"" if self.started else self._start(chunk)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for c in chunk.get("choices") or ():
            d = c.get("delta") or {}
            reasoning = d.get("reasoning_content") or d.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                if self.open_kind != "thinking":
                    out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                out += self._delta(self.block, {"type": "thinking_delta", "thinking": reasoning})
            text = d.get("content")
            if isinstance(text, str) and text:
                if self.open_kind != "text":
                    out += self._open("text", {"type": "text", "text": "", "citations": None})
                out += self._delta(self.block, {"type": "text_delta", "text": text})
            for tc in d.get("tool_calls") or ():
                k = tc.get("index", 0)
                f = tc.get("function") or {}
                if k not in self.tool_blocks:
                    out += self._open("tool_use", {"type": "tool_use", "id": str(tc.get("id") or f"call_{k}"),
                                                   "name": str(f.get("name") or ""), "input": {}})
                    self.tool_blocks[k] = self.block
                args = f.get("arguments")
                if args:
                    out += self._delta(self.tool_blocks[k], {"type": "input_json_delta", "partial_json": args})
            if c.get("finish_reason"):
                self.finish = c["finish_reason"]
        return out

    def end(self) -> bytes:
        """The closing events, once the chat stream is over (`[DONE]` or its end)."""
        out = b"" if self.started else self._start({})
        out += self._close()
        usage = usage_from_chat(self.usage)
        delta = {"type": "message_delta",
                 "delta": {"stop_reason": STOP_FROM_FINISH.get(self.finish or "stop", "end_turn"),
                           "stop_sequence": None},
                 "usage": usage}
        return out + encode("message_delta", delta) + encode("message_stop", {"type": "message_stop"})


def chat_chunk_bytes(chunk: dict[str, Any]) -> bytes:
    """A chat chunk as the SSE bytes a chat completions client reads."""
    return encode_data(chunk)


__all__ = [
    "DONE", "ChatToMessages", "MessagesToChat", "chat_chunk_bytes", "chat_to_message", "chat_to_messages",
    "message_to_chat", "messages_to_chat", "usage_from_chat", "usage_to_chat",
]
