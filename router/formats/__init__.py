"""Wire-format translation, shared by endpoints and backends: chat ⇄ Anthropic Messages, chat ⇄ Responses.

Chat completions are the pivot. A client format (`chat`, `messages`, `responses`) and an upstream format
(`chat`, `messages`) meet in a `bridge.Translation`, built per attempt when the chosen backend does not speak
the client's format natively (a format it speaks natively is passed through untouched, never translated):

    events.py     an incremental SSE decoder (bounded events) and the event encoder
    anthropic.py  chat ⇄ Messages: requests, JSON answers, stream events both ways, usage, stop reasons
    responses.py  Responses → chat requests; chat answers and streams → Responses objects and events
    errors.py     error bodies and in-band stream errors in each client format
    bridge.py     one request's translation: the upstream body, the JSON answer, the stream translator
    detect.py     which endpoint a bare body belongs to (for `POST /v1/route`)

Pure: no aiohttp, no middleware. Failures are `router.errors` (a client's unsupported feature is an
`InvalidRequest` naming it).
"""
