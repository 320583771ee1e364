"""The Responses API on chat-only backends: requests to chat, chat answers and streams back to Responses.

    responses_to_chat(body)      a `POST /v1/responses` request as a chat completions request
    chat_to_response(c, req)     a chat.completion as a Response object
    ChatToResponses              chat.completion.chunk dicts in, Responses stream events out, one by one:
                                 response.created, response.in_progress, response.output_item.added,
                                 response.content_part.added, response.output_text.delta …/done,
                                 response.function_call_arguments.delta …/done, response.output_item.done,
                                 then response.completed (or response.incomplete at max_output_tokens)

What needs state the router does not keep, or tools only OpenAI runs, is refused with a 400 naming it:
`previous_response_id`, `conversation`, `prompt` (stored templates), `background`, `item_reference`
inputs, and every built-in tool (web_search, file_search, code_interpreter, computer use, image
generation, MCP, shell, …). Such requests need a model with `capabilities: [responses]`, whose backend
speaks the Responses API itself and gets the request untouched.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from router.errors import InvalidRequest
from router.formats.events import encode

STATEFUL = ("previous_response_id", "conversation", "prompt")
_ids = itertools.count(1)
_prefix = os.urandom(6).hex()


def new_id(kind: str) -> str:
    return f"{kind}_{_prefix}{next(_ids):x}"


def _unsupported(feature: str, param: str) -> InvalidRequest:
    return InvalidRequest(
        f"{feature} is not supported by this model: its backend speaks only chat completions, so the router "
        f"translates the Responses API and keeps no state and runs no built-in tools. Use a model with "
        f"`capabilities: [responses]` for it.", param=param, code="unsupported_parameter",
    )


# ---------------------------------------------------------------- request


def native_only(body: dict[str, Any]) -> str | None:
    """What in a Responses request only a backend speaking the Responses API can serve (None: translatable)."""
    for key in STATEFUL:
        if body.get(key) is not None:
            return key
    if body.get("background") is True:
        return "background"
    if body.get("input") is None and not body.get("instructions"):
        return "input"
    for t in body.get("tools") or ():
        if not isinstance(t, dict) or t.get("type") != "function":
            return "tools"
    inp = body.get("input")
    if isinstance(inp, list) and any(isinstance(i, dict) and i.get("type") == "item_reference" for i in inp):
        return "input"
    return None


def responses_to_chat(body: dict[str, Any], max_tokens_field: str = "max_tokens") -> dict[str, Any]:
    """A Responses request as a chat completions request (the caller sets `model`)."""
    for key in STATEFUL:
        if body.get(key) is not None:
            raise _unsupported(f"'{key}' (state stored by OpenAI)", key)
    if body.get("background") is True:
        raise _unsupported("'background' mode", "background")
    if body.get("top_logprobs"):
        raise _unsupported("'top_logprobs'", "top_logprobs")
    msgs: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        msgs.append({"role": "system", "content": instructions})
    inp = body.get("input")
    if isinstance(inp, str):
        msgs.append({"role": "user", "content": inp})
    elif isinstance(inp, list):
        for i, item in enumerate(inp):
            _input_item(msgs, item, i)
    if not msgs:
        raise InvalidRequest("Missing 'input': a translated Responses request needs input or instructions.",
                             param="input", code="missing_required_parameter")
    out: dict[str, Any] = {"messages": msgs}
    if body.get("max_output_tokens") is not None:
        out[max_tokens_field] = body["max_output_tokens"]
    for key in ("temperature", "top_p", "parallel_tool_calls", "service_tier"):
        if body.get(key) is not None:
            out[key] = body[key]
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["user"] = user
    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool(t, i) for i, t in enumerate(tools)]
    choice = body.get("tool_choice")
    if choice is not None:
        out["tool_choice"] = _tool_choice(choice)
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict):
        kind = fmt.get("type")
        if kind == "json_object":
            out["response_format"] = {"type": "json_object"}
        elif kind == "json_schema":
            js = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
            out["response_format"] = {"type": "json_schema", "json_schema": js}
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        out["reasoning_effort"] = reasoning["effort"]
    if body.get("stream") is True:
        out["stream"] = True
    return out


def _input_item(msgs: list[dict[str, Any]], item: Any, i: int) -> None:
    param = f"input[{i}]"
    if not isinstance(item, dict):
        raise InvalidRequest(f"Invalid type for '{param}': expected an object.", param=param, code="invalid_type")
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise InvalidRequest(f"Invalid '{param}.role': {role!r}.", param=f"{param}.role")
        content = item.get("content")
        msgs.append({"role": "system" if role == "developer" else role,
                     "content": content if isinstance(content, str) else _parts(content, role, param)})
    elif kind == "function_call":
        call = {"id": str(item.get("call_id") or item.get("id") or ""), "type": "function",
                "function": {"name": str(item.get("name", "")), "arguments": str(item.get("arguments") or "")}}
        last = msgs[-1] if msgs else None
        if last is not None and last["role"] == "assistant" and "tool_calls" in last:
            last["tool_calls"].append(call)
        elif last is not None and last["role"] == "assistant" and "tool_calls" not in last:
            last["tool_calls"] = [call]
        else:
            msgs.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        out = item.get("output")
        text = out if isinstance(out, str) else "".join(
            str(p.get("text", "")) for p in out or () if isinstance(p, dict))
        msgs.append({"role": "tool", "tool_call_id": str(item.get("call_id", "")), "content": text})
    elif kind == "reasoning":
        return  # the model's own earlier reasoning: nothing a chat backend takes
    elif kind == "item_reference":
        raise _unsupported("'item_reference' inputs (state stored by OpenAI)", f"{param}.type")
    else:
        raise _unsupported(f"input items of type {kind!r}", f"{param}.type")


def _parts(content: Any, role: str, param: str) -> Any:
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid type for '{param}.content'.", param=f"{param}.content", code="invalid_type")
    parts: list[dict[str, Any]] = []
    for j, p in enumerate(content):
        kind = p.get("type") if isinstance(p, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(p.get("text", ""))})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(p.get("refusal", ""))})
        elif kind == "input_image":
            url = p.get("image_url")
            if not url:
                raise _unsupported("'input_image' by file_id (files stored by OpenAI)", f"{param}.content[{j}]")
            image: dict[str, Any] = {"url": url}
            if p.get("detail"):
                image["detail"] = p["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file" and p.get("file_data"):
            parts.append({"type": "file", "file": {"file_data": p["file_data"],
                                                   **({"filename": p["filename"]} if p.get("filename") else {})}})
        else:
            raise _unsupported(f"content parts of type {kind!r}", f"{param}.content[{j}]")
    if role != "user" and all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _tool(t: Any, i: int) -> dict[str, Any]:
    kind = t.get("type") if isinstance(t, dict) else None
    if kind != "function":
        raise _unsupported(f"the built-in tool {kind!r}", f"tools[{i}].type")
    f = {k: t[k] for k in ("name", "description", "parameters", "strict") if t.get(k) is not None}
    return {"type": "function", "function": f}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise _unsupported(f"tool_choice {kind!r}", "tool_choice")


# ---------------------------------------------------------------- answers


def usage_from_chat(u: dict[str, Any] | None) -> dict[str, Any]:
    u = u or {}
    pd = u.get("prompt_tokens_details") if isinstance(u.get("prompt_tokens_details"), dict) else {}
    cd = u.get("completion_tokens_details") if isinstance(u.get("completion_tokens_details"), dict) else {}
    inp = int(u.get("prompt_tokens") or 0)
    out = int(u.get("completion_tokens") or 0)
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": int(pd.get("cached_tokens") or 0)},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": int(cd.get("reasoning_tokens") or 0)},
        "total_tokens": int(u.get("total_tokens") or inp + out),
    }


def _skeleton(req: dict[str, Any], rid: str, model: Any, created: int) -> dict[str, Any]:
    """The request-echoing fields every Response object carries."""
    text = req.get("text") if isinstance(req.get("text"), dict) else {}
    reasoning = req.get("reasoning") if isinstance(req.get("reasoning"), dict) else {}
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "service_tier": req.get("service_tier") or "default",
        "store": False,
        "temperature": req.get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": req.get("tools") or [],
        "top_p": req.get("top_p", 1.0),
        "truncation": req.get("truncation") or "disabled",
        "usage": None,
        "user": req.get("user"),
        "metadata": req.get("metadata") or {},
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


def _finish(resp: dict[str, Any], finish: str | None) -> None:
    if finish == "length":
        resp["status"] = "incomplete"
        resp["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish == "content_filter":
        resp["status"] = "incomplete"
        resp["incomplete_details"] = {"reason": "content_filter"}
    else:
        resp["status"] = "completed"
        resp["completed_at"] = int(time.time())


def chat_to_response(completion: dict[str, Any], req: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion as a Response object (`req` is the client's Responses request)."""
    resp = _skeleton(req, new_id("resp"), completion.get("model"), int(completion.get("created") or time.time()))
    c = (completion.get("choices") or [{}])[0]
    m = c.get("message") or {}
    text = m.get("content")
    if isinstance(text, str) and text:
        resp["output"].append(_message_item(new_id("msg"), text))
    for tc in m.get("tool_calls") or ():
        f = tc.get("function") or {}
        resp["output"].append(_call_item(new_id("fc"), str(tc.get("id") or new_id("call")),
                                         str(f.get("name", "")), str(f.get("arguments") or "")))
    _finish(resp, c.get("finish_reason"))
    resp["usage"] = usage_from_chat(completion.get("usage"))
    return resp


class ChatToResponses:
    """chat.completion.chunk dicts in, Responses stream event bytes out.

    Output items open as their first delta arrives: the assistant message (one output_text part) and one
    function_call item per tool call, each with its own `output_index`; all close at the end, in order.
    Every event carries the stream's `sequence_number`."""

    __slots__ = ("calls", "finish", "msg", "order", "req", "resp", "seq", "text", "usage")

    def __init__(self, req: dict[str, Any], model: str | None) -> None:
        self.req = req
        self.resp = _skeleton(req, new_id("resp"), model, int(time.time()))
        self.seq = 0
        self.order: list[Any] = []  # output items in output_index order: "msg" or a tool call index
        self.msg: str | None = None  # the message item's id once open
        self.text: list[str] = []
        self.calls: dict[int, list[str]] = {}  # tool call index → [item id, call id, name, arguments…]
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None

    def _ev(self, name: str, payload: dict[str, Any]) -> bytes:
        payload = {"type": name, **payload, "sequence_number": self.seq}
        self.seq += 1
        return encode(name, payload)

    def start(self) -> bytes:
        return (self._ev("response.created", {"response": self.resp})
                + self._ev("response.in_progress", {"response": self.resp}))

    def feed(self, chunk: dict[str, Any]) -> bytes:
        out = b""
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for c in chunk.get("choices") or ():
            d = c.get("delta") or {}
            text = d.get("content")
            if isinstance(text, str) and text:
                if self.msg is None:
                    self.msg = new_id("msg")
                    idx = len(self.order)
                    self.order.append("msg")
                    item = {**_message_item(self.msg, "", "in_progress"), "content": []}
                    out += self._ev("response.output_item.added", {"output_index": idx, "item": item})
                    out += self._ev("response.content_part.added", {
                        "item_id": self.msg, "output_index": idx, "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
                self.text.append(text)
                out += self._ev("response.output_text.delta", {
                    "item_id": self.msg, "output_index": self.order.index("msg"), "content_index": 0,
                    "delta": text, "logprobs": []})
            for tc in d.get("tool_calls") or ():
                k = int(tc.get("index", 0))
                f = tc.get("function") or {}
                call = self.calls.get(k)
                if call is None:
                    call = self.calls[k] = [new_id("fc"), str(tc.get("id") or new_id("call")),
                                            str(f.get("name") or "")]
                    idx = len(self.order)
                    self.order.append(k)
                    out += self._ev("response.output_item.added", {
                        "output_index": idx, "item": _call_item(call[0], call[1], call[2], "", "in_progress")})
                args = f.get("arguments")
                if args:
                    call.append(args)
                    out += self._ev("response.function_call_arguments.delta", {
                        "item_id": call[0], "output_index": self.order.index(k), "delta": args})
            if c.get("finish_reason"):
                self.finish = c["finish_reason"]
        return out

    def end(self) -> bytes:
        out = b""
        items: list[dict[str, Any]] = []
        for idx, key in enumerate(self.order):
            if key == "msg":
                text = "".join(self.text)
                part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                out += self._ev("response.output_text.done", {
                    "item_id": self.msg, "output_index": idx, "content_index": 0, "text": text, "logprobs": []})
                out += self._ev("response.content_part.done", {
                    "item_id": self.msg, "output_index": idx, "content_index": 0, "part": part})
                item = _message_item(self.msg or "", text)
            else:
                call = self.calls[key]
                args = "".join(call[3:])
                out += self._ev("response.function_call_arguments.done", {
                    "item_id": call[0], "output_index": idx, "name": call[2], "arguments": args})
                item = _call_item(call[0], call[1], call[2], args)
            items.append(item)
            out += self._ev("response.output_item.done", {"output_index": idx, "item": item})
        resp = self.resp
        resp["output"] = items
        _finish(resp, self.finish)
        resp["usage"] = usage_from_chat(self.usage)
        name = "response.completed" if resp["status"] == "completed" else "response.incomplete"
        return out + self._ev(name, {"response": resp})

    def error(self, code: str, message: str) -> bytes:
        """An in-band `error` event (a failure after the stream began)."""
        return self._ev("error", {"code": code, "message": message, "param": None})
