"""What the scanner looks for: one row per detector (kind, category, pattern, check), in priority order.

The patterns are joined into one alternation and compiled once (`router.redaction.scanner`), so a text is
scanned once whatever the number of kinds. A pattern finds a *candidate*; its `check` (checksums, SSA
rules, entropy, placeholders and references such as `${VAR}`) decides, and may narrow the span to the
secret part (`(?P<v>...)`: the password of a URL, the value of `password=...`). `before`/`after` are
characters that may not touch the match (word boundaries, kept out of the patterns so they stay
portable to RE2 and Hyperscan, which were measured against the stdlib: see docs/performance.md).
`finder`, when set, is what the compiled pass looks for instead of `pattern`: a looser pattern (it matches
wherever `pattern` does, from the same start; a test holds it to that) that is cheaper for RE2's DFA. The
pass only says where a candidate may start; `pattern` still decides, so findings are the same.

Kinds (placeholder names): secrets PRIVATE_KEY, ANTHROPIC_KEY, OPENAI_KEY, GOOGLE_KEY, AWS_ACCESS_KEY,
AWS_SECRET_KEY, AZURE_KEY, GITHUB_TOKEN, GITLAB_TOKEN, SLACK_TOKEN, STRIPE_KEY, TWILIO_KEY, SENDGRID_KEY,
JWT, PASSWORD, SECRET, TOKEN; PII EMAIL, PHONE, CARD, IBAN, SSN, CPF, CNPJ, IP.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from router.redaction.checksums import TEST_CARDS, cnpj_ok, cpf_ok, entropy_at_least, iban_ok, is_card, ssn_ok

SECRET = "secret"
PII = "pii"
SAFE = "SAFE"  # a check's answer for a span that is known not to be sensitive (a test card): skip it whole

WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
NUMERIC_NEIGHBOURS = WORD | frozenset("-./")
TOKEN_NEIGHBOURS = WORD | frozenset("-")

Span = tuple[int, int]
# A check sees the text, the candidate's span and its secret part's span (group v or w, if the pattern
# has one); it answers (kind, start, end) or None.
Check = Callable[[str, int, int, "Span | None"], "tuple[str, int, int] | None"]


@dataclass(frozen=True, slots=True)
class Detector:
    kind: str
    category: str
    pattern: str
    check: Check | None = None
    before: frozenset[str] = WORD  # characters that may not precede the match
    after: frozenset[str] = frozenset()  # characters that may not follow it
    generic: bool = False  # found by context (`password=`, `Bearer`): a provider's own format wins the kind
    finder: str | None = None  # the compiled pass's looser stand-in for `pattern` (see the module docstring)


# ---------------------------------------------------------------- checks


_PLACEHOLDER_VALUE = re.compile(
    r"^(?:\$\{.*\}?|\$\(.*|\$[A-Za-z_]\w*|%[A-Za-z_]\w*%?|<[^>]*>?|\{\{.*|\[.*\]|\*+|x{3,}|X{3,}|\.{3,}|"
    r"(?:your|my|the|some|insert|enter|example|sample|dummy|fake|placeholder|changeme|redacted|secret|password|pass|"
    r"passwd|pwd|pw|user|token|none|null|nil|true|false|undefined|empty|string|str|bytes|int|required|optional|env|os|process|"
    r"config|settings|self|this|getenv|get|input|getpass|prompt|args|params|request|req|ctx|field)\b.*)$",
    re.IGNORECASE,
)
_REFERENCE = re.compile(  # code, not a value: `self.cfg.token`, `resp["x"][0]`, `get_key(`, `DB_PASSWORD`
    r"^[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*|\[[^\]]*\]?)+(?:\(.*)?$|^[A-Za-z_]\w*\(|^[A-Z][A-Z0-9_]{2,}$")


def _looks_random(value: str, min_len: int = 16, min_bits: float = 3.2, distinct: int | None = None) -> bool:
    """Long enough, letters and digits mixed (a module path or a type annotation has no digit), and not
    too repetitive (`distinct`: `len(set(value))`, when the caller has it)."""
    if len(value) < min_len or not any(map(str.isdigit, value)) or not any(map(str.isalpha, value)):
        return False
    # classes present: lower, upper, digit (there is one); `map` over the str methods: no Python frame per character
    classes = any(map(str.islower, value)) + any(map(str.isupper, value)) + 1
    return classes >= 2 and entropy_at_least(value, min_bits, distinct)


def _keyish(kind: str, min_bits: float = 3.0) -> Check:
    """A provider key with a known prefix: its tail must look random (not `sk-your-key-here-please`)."""

    def check(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
        tail = text[s:e]
        if not any(map(str.isdigit, tail)) or not entropy_at_least(tail, min_bits):
            return None
        return kind, s, e

    return check


def _plain(kind: str) -> Check:
    def check(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
        vs, ve = v or (s, e)
        return kind, vs, ve

    return check


def _secret_value(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    """`name = value` where the name says password/secret/token/key: a password is any real-looking value
    (6+ characters, not a placeholder or a reference); other names need a random-looking value."""
    vs, ve = v or (s, e)
    value = text[vs:ve].rstrip(".")
    ve = vs + len(value)
    name = text[s:vs].lower()
    if _PLACEHOLDER_VALUE.match(value):
        return None
    distinct = len(set(value))
    if distinct < 4:
        return None
    if any(w in name for w in ("pass", "pwd", "senha")):
        if len(value) < 6 or _REFERENCE.match(value):
            return None
        return "PASSWORD", vs, ve
    if not _looks_random(value, 12, 3.0, distinct) or _REFERENCE.match(value):
        return None
    return "SECRET", vs, ve


def _url_password(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    vs, ve = v or (s, e)
    value = text[vs:ve]
    if _PLACEHOLDER_VALUE.match(value) or len(value) < 3:
        return None
    return "PASSWORD", vs, ve


def _bearer(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    vs, ve = v or (s, e)
    value = text[vs:ve]
    if not _looks_random(value, 16, 3.3) or _PLACEHOLDER_VALUE.match(value):
        return None
    return "TOKEN", vs, ve


def _basic(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    vs, ve = v or (s, e)
    try:
        raw = base64.b64decode(text[vs:ve], validate=True)
    except (binascii.Error, ValueError):
        return None
    if b":" not in raw or len(raw) < 5:
        return None
    return "PASSWORD", vs, ve


def _aws_key(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    return "AWS_ACCESS_KEY", s, e


_FILE_TLDS = frozenset((
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff", "js", "mjs", "ts", "tsx", "jsx", "css",
    "scss", "py", "rb", "go", "rs", "java", "kt", "md", "txt", "json", "yaml", "yml", "xml", "html", "htm", "map",
    "lock", "log", "csv", "pdf", "zip", "gz", "tar", "so", "dll", "exe", "bin", "wasm", "vue", "php", "sh",
))


def _email(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    local, _, domain = text[s:e].rpartition("@")
    if len(local) > 64 or local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    tld = domain.rsplit(".", 1)[-1].lower()
    if tld in _FILE_TLDS or len(tld) > 24:
        return None
    return "EMAIL", s, e


def _iban(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    raw = text[s:e]
    compact = raw.replace(" ", "")
    # the pattern may run into a following word: shorten by whole groups until the checksum holds
    while len(compact) >= 15:
        if iban_ok(compact):
            end = s
            seen = 0
            while seen < len(compact):  # map the compact length back onto the spaced text
                if text[end] != " ":
                    seen += 1
                end += 1
            return "IBAN", s, end
        cut = raw.rfind(" ")
        if cut <= 4:
            compact = compact[:-1]
            raw = raw[:-1]
        else:
            raw = raw[:cut]
            compact = raw.replace(" ", "")
    return None


def _cnpj_formatted(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    chars = "".join(c for c in text[s:e] if c.isalnum())
    return ("CNPJ", s, e) if cnpj_ok(chars) else None


def _cnpj_plain(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    """An unformatted (possibly alphanumeric) CNPJ: check digits, and the text must say CNPJ nearby."""
    chars = text[s:e]
    if chars.isdigit() or not cnpj_ok(chars) or not _context(text, s, ("cnpj",)):
        return None
    return "CNPJ", s, e


def _cpf_formatted(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    return ("CPF", s, e) if cpf_ok(text[s:e].replace(".", "").replace("-", "")) else None


def _ssn(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    v = text[s:e]
    return ("SSN", s, e) if ssn_ok(v[0:3], v[4:6], v[7:11]) else None


_NOT_PERSONAL_IPS = ("0.0.0.0", "255.255.255.255")


def _ipv4(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    v = text[s:e]
    parts = v.split(".")
    if any(len(p) > 1 and p[0] == "0" for p in parts) or any(int(p) > 255 for p in parts):
        return None
    if v in _NOT_PERSONAL_IPS or parts[0] == "127" or v.startswith("255.255."):
        return None
    if e < len(text) - 1 and text[e] in "./" and text[e + 1].isdigit():
        return None  # a longer dotted number (a version such as 1.2.3.4.5), or a network (10.0.0.0/8)
    head = text[max(0, s - 9):s].lower()
    if head.endswith(("v", "version ", "version=", "ver ", "release ", "build ")):
        return None
    return "IP", s, e


def _ipv6(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    v = text[s:e]
    if v.count(":") < 2 or ("::" not in v and v.count(":") != 7):
        return None
    try:
        addr = ipaddress.IPv6Address(v)
    except ValueError:
        return None
    if addr.is_loopback or addr.is_unspecified:
        return None
    return "IP", s, e


def _digits(v: str) -> str:
    return "".join(filter(str.isdigit, v))


def _card(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    """Digits in groups: the longest run of whole groups (13 to 19 digits) that is a card; a published
    test card number is skipped whole."""
    end = e
    while end > s:
        digits = _digits(text[s:end])
        if len(digits) < 13:
            return None
        if digits in TEST_CARDS:
            return SAFE, s, end
        if len(digits) <= 19 and is_card(digits):
            if len(digits) == end - s and _context(text, s, _ID_WORDS, 14):
                return None  # an unformatted run the text calls an order number or an id
            return "CARD", s, end
        cut = max(text.rfind(" ", s, end), text.rfind("-", s, end))  # drop the last group
        if cut <= s:
            return None
        end = cut


def _context(text: str, s: int, words: tuple[str, ...], span: int = 32) -> bool:
    head = text[max(0, s - span):s].lower()
    return any(w in head for w in words)


_ID_WORDS = ("#", "order", "pedido", "nº", "n.º", "id", "invoice", "protocolo", "ticket", "ref", "tracking", "nsu",
             "transaction", "txn")
_PHONE_WORDS = ("tel", "phone", "fone", "celular", "cel", "whatsapp", "mobile", "call", "ligue", "contato",
                "contact", "fax", "sms")


def _run(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    """An unformatted run of 9 to 19 digits: a card (Luhn, unless the text calls it an order or an id), or
    a CPF/CNPJ/SSN/phone when the text says so."""
    v = text[s:e]
    if v in TEST_CARDS:
        return SAFE, s, e
    if 13 <= len(v) <= 19 and is_card(v) and not _context(text, s, _ID_WORDS, 14):
        return "CARD", s, e
    if len(v) == 9 and ssn_ok(v[:3], v[3:5], v[5:]) and _context(text, s, ("ssn", "social security")):
        return "SSN", s, e
    if len(v) == 11 and cpf_ok(v) and _context(text, s, ("cpf",)):
        return "CPF", s, e
    if len(v) == 14 and cnpj_ok(v) and _context(text, s, ("cnpj",)):
        return "CNPJ", s, e
    if 10 <= len(v) <= 13 and _context(text, s, _PHONE_WORDS):
        return "PHONE", s, e
    return None


_DATE_LIKE = re.compile(r"^(?:19|20)\d\d[-./ ]\d\d?[-./ ]\d\d?|^\d\d?[-./]\d\d?[-./](?:19|20)\d\d")


def _phone(text: str, s: int, e: int, v: Span | None) -> tuple[str, int, int] | None:
    v = text[s:e]
    digits = _digits(v)
    if not 8 <= len(digits) <= 15 or len(set(digits)) < 3 or _DATE_LIKE.match(v):
        return None
    if not v.startswith("+") and "(" not in v and len(digits) < 9:
        return None
    if _continues(text, s, e):
        return None  # a group of a longer number (a card's first groups, an id)
    return "PHONE", s, e


def _continues(text: str, s: int, e: int) -> bool:
    """Does a separator and a digit touch the span on either side?"""
    return (e + 1 < len(text) and text[e] in " .-" and text[e + 1].isdigit()) or (
        s >= 2 and text[s - 1] in " .-" and text[s - 2].isdigit())


# ---------------------------------------------------------------- the table (order is priority)

_ASSIGN_NAMES = (
    r"(?:passw(?:or)?d|passwd|pwd|passphrase|senha|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"private[_-]?key|credentials?|auth)"
)

# PHONE's alternatives that start with `+` or `(`; the pattern and its finder share them
_PHONE_OPEN = (r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]?\d{1,5}){1,4}|"
               r"\(\d{2,4}\)[ .-]?(?:9[ .-])?\d{3,5}[ .-]?\d{4}")

DETECTORS: tuple[Detector, ...] = (
    Detector("PRIVATE_KEY", SECRET,
             r"-----BEGIN[A-Z0-9 ]* PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END[A-Z0-9 ]* PRIVATE KEY"
             r"(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\]{16,}[A-Za-z0-9+/=])", _plain("PRIVATE_KEY"), before=frozenset()),
    Detector("JWT", SECRET, r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", _plain("JWT"),
             before=TOKEN_NEIGHBOURS),
    Detector("ANTHROPIC_KEY", SECRET, r"sk-ant-[a-z]{2,8}\d{0,3}-[A-Za-z0-9_-]{20,}", _plain("ANTHROPIC_KEY"),
             before=TOKEN_NEIGHBOURS),
    Detector("OPENAI_KEY", SECRET, r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}",
             _keyish("OPENAI_KEY", 3.3), before=TOKEN_NEIGHBOURS),
    Detector("GOOGLE_KEY", SECRET, r"(?:AIza[0-9A-Za-z_-]{35}|ya29\.[0-9A-Za-z_-]{20,}|GOCSPX-[0-9A-Za-z_-]{28}|"
                                   r"1//0[0-9A-Za-z_-]{40,})", _plain("GOOGLE_KEY"), before=TOKEN_NEIGHBOURS),
    Detector("AWS_ACCESS_KEY", SECRET, r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[0-9A-Z]{16}",
             _aws_key, after=WORD),
    Detector("AWS_SECRET_KEY", SECRET,
             r"(?i:aws)[A-Za-z0-9_.-]*(?i:secret)[A-Za-z0-9_.-]*[\"']?\s{0,3}[:=]\s{0,3}[\"']?"
             r"(?P<v>[A-Za-z0-9/+]{40})", _plain("AWS_SECRET_KEY"), after=frozenset(WORD | {"/", "+"})),
    Detector("AZURE_KEY", SECRET,
             r"(?:AccountKey=(?P<v>[A-Za-z0-9+/]{86}==)|[?&]sig=[A-Za-z0-9%+/]{40,}={0,2}|"
             r"[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}|"
             r"(?i:azure|ocp-apim-subscription-key|api-key)[A-Za-z0-9_.-]*[\"']?\s{0,3}[:=]\s{0,3}[\"']?"
             r"(?P<w>[a-fA-F0-9]{32}))", _plain("AZURE_KEY"), before=frozenset()),
    Detector("GITHUB_TOKEN", SECRET, r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{36,})",
             _plain("GITHUB_TOKEN")),
    Detector("GITLAB_TOKEN", SECRET,
             r"(?:gl(?:pat|dt|rt|ptt|cbt|soat|ft|imt|agent|oas|wt)-[A-Za-z0-9_-]{20,}|GR1348941[A-Za-z0-9_-]{20,})",
             _plain("GITLAB_TOKEN"), before=TOKEN_NEIGHBOURS),
    Detector("SLACK_TOKEN", SECRET,
             r"(?:xox[abpreos]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,}|"
             r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{20,})",
             _plain("SLACK_TOKEN"), before=TOKEN_NEIGHBOURS),
    Detector("STRIPE_KEY", SECRET, r"(?:(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,})",
             _plain("STRIPE_KEY")),
    Detector("TWILIO_KEY", SECRET, r"(?:AC|SK)[a-f0-9]{32}", _plain("TWILIO_KEY"), after=WORD),
    Detector("SENDGRID_KEY", SECRET, r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", _plain("SENDGRID_KEY"),
             before=TOKEN_NEIGHBOURS),
    Detector("PASSWORD", SECRET,
             r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@\"'<>]*:(?P<v>[^\s@/\"'<>]+)@", _url_password,
             generic=True),
    Detector("TOKEN", SECRET, r"(?i:bearer)\s{1,3}(?P<v>[A-Za-z0-9._~+/-]{16,}=*)", _bearer, generic=True),
    Detector("PASSWORD", SECRET, r"(?i:basic)\s{1,3}(?P<v>[A-Za-z0-9+/]{8,}={0,2})", _basic, generic=True),
    Detector("SECRET", SECRET,
             r"(?i:" + _ASSIGN_NAMES + r")[A-Za-z0-9_.-]*[\"']?\s{0,3}(?:=>|:=|=|:)\s{0,3}"
             r"[\"']?(?P<v>[^\s\"'`,;)}\]<>\\]{4,})", _secret_value, before=frozenset(), generic=True),
    Detector("EMAIL", PII,
             r"[A-Za-z0-9À-ÖØ-öø-ÿ._%+-]+@[A-Za-z0-9À-ÖØ-öø-ÿ](?:[A-Za-z0-9À-ÖØ-öø-ÿ-]*[A-Za-z0-9À-ÖØ-öø-ÿ])?"
             r"(?:\.[A-Za-z0-9À-ÖØ-öø-ÿ-]+)*\.[A-Za-z]{2,}", _email,
             before=frozenset(WORD | {".", "%", "+", "-"}), after=WORD),
    Detector("IBAN", PII, r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?", _iban),
    Detector("CNPJ", PII, r"[A-Z0-9]{2}\.[A-Z0-9]{3}\.[A-Z0-9]{3}/[A-Z0-9]{4}-\d{2}", _cnpj_formatted,
             before=NUMERIC_NEIGHBOURS, after=WORD),
    Detector("CNPJ", PII, r"[A-Z0-9]{12}\d{2}", _cnpj_plain, before=NUMERIC_NEIGHBOURS, after=WORD),
    Detector("CPF", PII, r"\d{3}\.\d{3}\.\d{3}-\d{2}", _cpf_formatted, before=NUMERIC_NEIGHBOURS, after=WORD),
    Detector("SSN", PII, r"\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}", _ssn,
             before=NUMERIC_NEIGHBOURS, after=frozenset(WORD | {"-"})),
    Detector("IP", PII, r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}", _ipv4, before=NUMERIC_NEIGHBOURS, after=WORD),
    Detector("CARD", PII, r"\d{4}[ -]?\d{4,6}[ -]?\d{4,5}(?:[ -]?\d{1,4}){0,2}", _card,
             before=NUMERIC_NEIGHBOURS, after=WORD),
    Detector("PHONE", PII, _PHONE_OPEN + r"|1[ .-]\d{3}[ .-]\d{3}[ .-]\d{4}|\d{2,4}[ .-]\d{3,5}[ .-]\d{4}|"
             r"0\d{2,4}[ .-]\d{5,8}|0\d(?:[ .-]\d\d){4}|9\d{4}-\d{4})", _phone,
             before=frozenset(WORD | {"-", ".", "/", "+"}), after=frozenset(WORD | {"-"}),
             # the pass reads the leading 1, 0 and 9 as any digit: with them, each digit of a random id
             # (`req 907-3fa2b1`) was its own DFA input class and most new ids built new RE2 states
             finder=_PHONE_OPEN + r"|\d[ .-]\d{3}[ .-]\d{3}[ .-]\d{4}|\d{2,4}[ .-]\d{3,5}[ .-]\d{4}|"
                    r"\d{3,5}[ .-]\d{5,8}|\d\d(?:[ .-]\d\d){4}|\d{5}-\d{4})"),
    Detector("CARD", PII, r"\d{9,}", _run, before=NUMERIC_NEIGHBOURS, after=WORD),
    Detector("IP", PII,
             r"(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6}|"
             r"(?:[0-9A-Fa-f]{1,4}:){1,7}:", _ipv6, before=frozenset(WORD | {":", "."}),
             after=frozenset(WORD | {":", "."})),
)


KINDS: dict[str, str] = {d.kind: d.category for d in DETECTORS} | {"SECRET": SECRET, "PASSWORD": SECRET,
                                                                   "TOKEN": SECRET}
