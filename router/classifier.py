"""Classification: what a request is about (task), how hard it looks (complexity), and how sure we are.

`classify` (the stage) hands a request's `Prompt` (router.tokens) to `Classifier.classify`, which returns
the `Features` that `route` matches rules against and that the preview and the `x-router-task` /
`x-router-complexity` headers show. Pure CPU: word sets and regexes compiled once at construction, run over
a bounded view of the prompt (the head and tail of the last user message, the heads of the system prompt and
of recent turns), so a 100k-token prompt costs about what a 2k-token one does.

Scoring: every class sums the weights of the signals that fired (structural detectors such as code fences,
stack traces, diffs, SQL, shell, math notation, word problems, summarise/translate/rewrite/extract asks, a
question over a pasted passage; plus whole-word keyword hits). Signals from the last user message count in
full, those from the system prompt and earlier turns at half. `chat` starts with a prior, so a request with
no signal is chat. Confidence grows with the winner's margin over the runner-up and with its evidence.

The classes and their keywords are configurable under `routing.tasks` (`parse_tasks` validates it):

    routing:
      tasks:
        code:                       # a built-in class: these add to its built-in signals
          keywords: [terraform, "pull request"]   # whole words / phrases, case-insensitive, +weight each
          weak_keywords: [pipeline]               # +weight/2 each
          patterns: ['^\\s*resource "\\w+"']       # regexes (case-insensitive, multi-line), +2*weight each
        legal:                      # a new class: scored by its own keywords and patterns only
          keywords: [contract, clause, indemnify, liability]
          weight: 1.5               # multiplies this class's keyword and pattern scores (default 1)
        math: {replace: true, keywords: [...]}   # drop the built-in signals of a class
        docs: false                 # disable a built-in class

Complexity (`low|medium|high`) adds up: prompt size, "hard" asks (refactor, prove, architecture, …),
moderate asks (review, debug, explain, …), simplicity markers (quick, one-liner, …, negative), several code
blocks or files, conversation depth, a long system prompt, tools, JSON mode and a large `max_tokens`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from router.config import ConfigError
from router.exchange import Features
from router.tokens import Prompt

BUILTIN_TASKS = ("code", "math", "docs", "chat")
DEFAULT_TASK = "chat"
CHAT_PRIOR = 1.0
CONTEXT_WEIGHT = 0.5  # signals from the system prompt and earlier turns
HEAD_CHARS, TAIL_CHARS, TURN_CHARS, MAX_TURNS = 2000, 600, 300, 6
LOW_BELOW, HIGH_FROM = 1.25, 2.75
WINDOWS, WINDOW_BACK, WINDOW_AHEAD = 4, 64, 240  # where a structural regex runs around its trigger

_TASK_KEYS = ("keywords", "weak_keywords", "patterns", "weight", "replace")
_RX = re.IGNORECASE | re.MULTILINE
_WORD = re.compile(r"[a-z0-9_]+")
# everything but letters, digits and "_" becomes a space before splitting into words (ASCII punctuation only)
_SPLIT = str.maketrans({c: " " for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~\t\n\r"})
_NUM = re.compile(r"[$:/.]?\d[\d.,:/]*%?")
_NUM_WORDS = frozenset(
    ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "fifteen", "twenty",
     "thirty", "forty", "fifty", "hundred", "dozen", "twice", "thrice", "half", "double", "triple"]
)
_YEAR = re.compile(r"1[5-9]\d\d|20\d\d")
_SOURCE_FILE = re.compile(r"\b[\w/-]+\.(?:py|js|ts|tsx|go|rs|java|rb|cs|cpp|c|h|php|kt|swift|scala)\b")
_CODE_CHARS = "{}<>=;|\\*#@^~`_"
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|my|me|we|our)\b")

# ---------------------------------------------------------------- built-in signals
# (name, task, weight, alternatives). An alternative is (trigger, regex): the regex only runs when the literal
# trigger occurs, so most cost `in` checks. Lower-case triggers are looked up in the lower-cased text and their
# regex runs on it; a trigger starting with "!" is case-sensitive and its regex runs on the original text. A
# regex of None means the trigger alone is the signal.

_LANGS = (
    r"python|py|js|javascript|ts|typescript|tsx|jsx|java|kotlin|go|golang|rust|rs|c|cpp|c\+\+|csharp|cs|ruby|rb|php"
    r"|swift|scala|sql|bash|sh|shell|zsh|powershell|ps1|yaml|yml|json|toml|html|css|dockerfile|makefile|lua|r|perl"
    r"|haskell|elixir|clojure|dart|terraform|hcl|graphql|proto|jsx|vue|svelte|text|console|diff|ini|xml"
)
_Alt = tuple[str, "str | None"]
STRUCTURAL: list[tuple[str, str, float, list[_Alt]]] = [
    ("code_fence", "code", 3.0, [("```", r"^```[ \t]*(?:" + _LANGS + r")?[ \t]*$")]),
    ("code_syntax", "code", 2.5, [
        ("def ", r"^[ \t]*def [a-z_]\w*\("), ("class ", r"^[ \t]*class \w+[(:{ ]"),
        ("import ", r"^[ \t]*import [\w.]+"),
        ("from ", r"^[ \t]*from [\w.]+ import "), ("function", r"^[ \t]*(?:export )?(?:async )?function \w*\("),
        ("const ", r"^[ \t]*const \w+ ?="), ("let ", r"^[ \t]*let (?:mut )?\w+ ?="), ("var ", r"^[ \t]*var \w+ ?="),
        ("#include", None), ("package ", r"^package [\w.]+;?$"), ("fn ", r"^[ \t]*(?:pub )?fn \w+"),
        ("func ", r"^func "), ("impl ", r"^impl\b"), ("struct ", r"^[ \t]*(?:type )?\w* ?struct \w* ?\{"),
        ("return", r"^[ \t]+return\b[^.\n]*;?$"), (">>> ", r"^>>> \S"), ("} else", None), ("}else", None),
        ("public ", r"^[ \t]*public [\w<>\[\]]+ \w+"), ("private ", r"^[ \t]*private [\w<>\[\]]+ \w+"),
        ("if (", r"^[ \t]*if \(.*\) ?\{"), ("for (", r"^[ \t]*for \(.*;.*\)"), (":= ", r"\w+ := "),
    ]),
    ("stack_trace", "code", 3.5, [
        ("traceback (most recent call last)", None), ("exception in thread", None), ("panic: ", None),
        ("segmentation fault", None), ("core dumped", None), ("error[e", r"error\[e\d{3,4}\]"), ("npm err!", None),
        ("undefined reference to", None), ('file "', r'^\s*file ".*", line \d+'),
        ("!    at ", r"^\s+at [\w$.<>]+\(.*\)\s*$"),
        ("!~Error", r"^\w*(?:Error|Exception)(?:\[\w+\])?:\s|^\s*(?:Error|ERROR|FATAL|fatal):\s"),
        ("!~Exception", r"^[\w.]*Exception:\s"), ("exit code", r"exit code \d+"), ("exit status", r"exit status \d+"),
        ("uncaught ", r"uncaught \w*error"),
    ]),
    ("diff", "code", 3.5, [("diff --git ", None), ("@@ -", r"^@@ -\d+(?:,\d+)? \+\d+"), ("--- a/", r"^--- a/"),
                           ("+++ b/", r"^\+\+\+ b/")]),
    ("sql", "code", 3.0, [
        ("select", r"\bselect\s+(?:distinct\s+)?(?:\*|[\w.]+(?:\s*,\s*[\w.()*]+)*)\s+from\s+\w+"),
        ("insert into", None), ("create table", None), ("create index", None), ("delete from", r"\bdelete from \w+"),
        ("update ", r"\bupdate\s+\w+\s+set\s+\w+\s*="), (" join ", r"\b(?:inner|left|right|full|outer)\s+join\b"),
        ("group by", r"\bgroup\s+by\s+\w+"),
    ]),
    ("shell", "code", 2.5, [
        ("!$ ", r"^\s*\$ \w"),
        ("!sudo ", r"^\s*sudo "),
        ("| ", r"\|\s*(?:grep|awk|sed|sort|uniq|wc|xargs|head|tail|jq|cut|tr)\b"),
        ("!-", r"^\s*(?:grep|awk|sed|chmod|chown|curl|wget|kubectl|docker|ssh|rsync|tar|find|ls|cp|mv|rm|pip|npm|git"
               r"|systemctl|brew|apt|apt-get) [^\n]*-{1,2}\w"),
        ("one-liner", r"\b(?:bash|zsh|shell|terminal|awk|sed) one-liner"),
        ("command", r"\b(?:bash|shell|terminal) command"),
    ]),
    ("file_paths", "code", 1.0, [(f".{ext}", rf"\w\.{ext}\b") for ext in (
        "py", "js", "mjs", "ts", "tsx", "jsx", "go", "rs", "java", "kt", "cpp", "hpp", "rb", "php", "cs", "swift",
        "scala", "sh", "yml", "yaml", "toml", "ini", "lock", "gradle", "vue")]),
    ("math_notation", "math", 3.0, [
        ("\\", r"\\(?:frac|sqrt|int|sum|prod|lim|cdot|times|alpha|beta|theta|lambda|infty|leq|geq|neq|mathbb|binom"
               r"|partial)\b"),
        ("^", r"\b\d*[a-z]\^\d"), ("=", r"\b\d+\s*[a-z]\s*[+\-]\s*\d+\s*=|\b[a-z]\s*\(\s*[a-z]\s*\)\s*="),
        ("~/d", r"\bd[xy]/d[xyt]\b"), ("% of", r"\b\d+(?:\.\d+)?\s*%\s+of\s+\$?\d"), ("/(", r"\b\d+/\("),
        (" to infinity", None), ("how many ways", None), ("mod ", r"\bmod \d+\b"),
        ("*", r"\b\d+(?:\.\d+)?\s*\*\s*\d+(?:\.\d+)?"), (" + ", r"\b\d+(?:\.\d+)?\s\+\s\d+(?:\.\d+)?\s*(?:=|\?|$)"),
        (" - ", r"\b\d+(?:\.\d+)?\s-\s\d+(?:\.\d+)?\s*(?:=|\?|$)"), ("/", r"\b\d+/\d+\s*[+\-*]\s*\d+/\d+"),
        ("", "[\u222b\u2211\u220f\u221a\u03c0\u2264\u2265\u2260\u221e\u2202\u2208\u2200\u2203\u00d7\u00f7]"),
    ]),
    ("word_problem", "math", 0.5, [
        ("how ", r"\bhow (?:many|much|long|far|fast|old|often)\b"),
        ("what ", r"\bwhat (?:is|was|were|are) the (?:total|sum|difference|average|mean|median|product|probability"
                  r"|percentage|ratio|area|perimeter|volume|remainder|value|cost|price|profit|speed|rate)\b"),
        ("what percent", None), ("in total", None), ("altogether", None),
    ] + [(verb, verb + r" (?:the |his |her |their |its |how )") for verb in (
        "find", "calculate", "compute", "determine", "work out")] + [
    ]),
    ("proof", "math", 3.0, [
        (" that", r"(?:^|[.!?:]\s+)(?:prove|show|demonstrate) that\b"), ("proof of", None), ("proof that", None),
        ("by induction", None), ("lemma", None), ("theorem", None), ("corollary", None), ("if and only if", None),
    ]),
    ("summarize", "docs", 3.5, [
    ] + [(w, None) for w in ("summarize", "summarise", "summary", "summarizing", "summarising", "summarization")] + [
        ("tl;dr", None), ("tldr", None), ("recap", None),
        ("condense", None), ("key points", None), ("main points", None), ("key takeaways", None), ("gist", r"\bgist\b"),
        ("given ", r"\bgiven (?:this|the|that) (?:paragraph|text|passage|article|document|excerpt)\b"),
        ("in ", r"\bin (?:one|two|three|a few|\d) (?:sentences?|bullet points?|paragraphs?|words)\b"),
        ("in one ", None), ("in two ", None), ("in three ", None), ("in a few ", None),
    ]),
    ("translate", "docs", 3.5, [
        ("translate", None), ("translation", None), ("translating", None),
        ("to ", r"\b(?:into|to) (?:french|german|spanish|italian|portuguese|japanese|chinese|mandarin|korean|russian"
                r"|arabic|hindi|dutch|polish|turkish|swedish|greek|hebrew|ukrainian|vietnamese)\b"),
    ]),
    ("rewrite", "docs", 3.5, [
    ] + [(verb, verb + r" (?:this|the|my|it|that|these|following)\b") for verb in (
        "rewrite", "re-write", "rephrase", "paraphrase", "proofread", "reword", "polish", "copyedit", "copy-edit",
        "edit",
        "shorten", "simplify")] + [
        ("following",
         r"\b(?:change|convert|turn|rewrite) (?:the |this )?following (?:passage|text|paragraph|sentences?)\b"),
        ("fix ", r"\bfix (?:the |my )?(?:grammar|spelling|typos|punctuation)\b"),
        ("make ", r"\bmake (?:it|this|that|the|my)(?: \w+)? (?:more|less|sound) \w+"),
        ("improve ", r"improve (?:the |my )?(?:wording|tone|flow|prose|writing|draft)\b"),
        ("tighten ", r"tighten (?:the |my )?(?:wording|tone|flow|prose|writing|draft)\b"),
        ("more ", r"\bmore (?:formal|concise|professional)\b"),
    ]),
    ("extract", "docs", 3.5, [
        ("extract", r"\bextract\b"),
    ] + [(verb + " all ", verb + r" all (?:of )?(?:the )?(?:\w+ ){0,2}(?:names?|dates?|entities|people|places|numbers"
                               r"|emails|items|companies|locations|mentions)\b")
         for verb in ("list", "find", "pull out", "identify")]
      + [(lead, lead + r" (?:the|this) (?:text|passage|article|paragraph|document|reference|excerpt|context|email"
                       r"|transcript|report)\b") for lead in ("based on", "according to", "using", "from")] + [
    ]),
    ("compose", "docs", 3.0, [
    ] + [(verb, verb + r" (?:me )?(?:a|an|the|some|two|three|our|my|this) (?:[\w-]+ ){0,3}?(?:email|e-mail|letter"
              r"|essay|paragraph|story|poem|blog|article|cover letter|speech|memo|bio|biography"
              r"|announcement|tweet|post|press release|haiku|limerick|song|lyrics|toast|eulogy|newsletter|slogan"
              r"|tagline|product description|review|summary|abstract|headline|caption|message|note|invitation|proposal"
              r"|report|outline|scene|dialogue|monologue|screenplay|character)s?\b")
          for verb in ("write", "draft", "compose", "create")]),
    ("greeting", "chat", 1.5, [
        ("", r"\A\s*(?:hi|hello|hey|yo|good (?:morning|afternoon|evening)|thanks|thank you|how are you|what's up)\b"),
    ]),
    ("advice", "chat", 1.5, [
    ] + [(lead, lead + r" (?:some |a few |\w+ )?(?:ideas|tips|suggestions|advice|ways|recommendations)\b")
         for lead in ("give me", "suggest", "recommend", "any")] + [
        ("should i", None), ("what do you think", None), ("your opinion", None), ("your favorite", None),
        ("your favourite", None), ("help me decide", None), ("help me choose", None), ("help me plan", None),
        ("pros and cons", None), ("brainstorm", None),
    ]),
]
# code-ish punctuation and identifiers: the code_tokens signal fires when at least two distinct ones occur
CODE_TOKENS = ("()", ");", "{", "}", "=>", "->", "::", "!=", "==", "&&", "||", "+=", "self.", "null", "None", "_",
               "[0]", "[i]", "/{", "</", "/>")

KEYWORDS: dict[str, tuple[list[str], list[str]]] = {  # task: (keywords, weak keywords)
    "code": (
        ["function", "functions", "method", "bug", "bugs", "debug", "debugging", "compile", "compiler", "compiles",
         "refactor", "refactoring", "regex", "api", "endpoint", "python", "javascript", "typescript", "java", "golang",
         "rust", "c++", "c#", "kotlin", "ruby", "php", "swift", "scala", "haskell", "script", "implement", "algorithm",
         "unittest", "pytest", "jest", "exception", "stacktrace", "segfault", "repo", "repository", "git", "docker",
         "kubernetes", "sql", "postgres", "postgresql", "mysql", "sqlite", "mongodb", "redis", "database", "schema",
         "html", "css", "react", "vue", "angular", "django", "flask", "fastapi", "node.js", "nodejs", "npm", "linter",
         "async", "await", "mutex", "deadlock", "programming", "programmatically", "codebase", "snippet", "variable",
         "variables", "dataframe", "pandas", "numpy", "json", "yaml", "http", "backend", "frontend", "webhook", "bash",
         "kubectl", "terraform", "nginx", "lambda", "struct", "enum", "boolean", "integer overflow", "null pointer",
         "unit test", "unit tests", "pull request", "code review", "type hints", "memory leak", "race condition",
         "command line", "one-liner", "shell script", "stack trace", "return value", "time complexity", "big-o",
         "binary search", "linked list", "hash map", "recursion", "recursive", "class", "classes", "code", "cron",
         "crontab", "ssh", "ssh-keygen", "vba", "macro", "makefile", "swiftui", "powershell", "graphql", "asyncio",
         "uart", "dma", "firmware", "microcontroller", "arduino", "interrupt handler", "rest api", "css", "sass",
         "webpack", "vite", "gradle", "maven", "cmake", "nginx", "apache", "ci", "cd pipeline", "jwt", "oauth",
         "bigquery", "spark", "kafka", "grpc", "protobuf", "websocket", "websockets", "env var", "localhost"],
        ["list", "string", "strings", "array", "arrays", "loop", "query", "index", "deploy", "server", "library",
         "package", "module", "test", "tests", "error", "crash", "crashes", "build", "syntax", "runtime", "thread",
         "object", "parse", "parser", "input", "output", "return", "returns", "dictionary", "file", "files"],
    ),
    "math": (
        ["solve", "equation", "equations", "integral", "derivative", "differentiate", "integrate", "theorem", "prove",
         "proof", "lemma", "probability", "matrix", "matrices", "eigenvalue", "eigenvalues", "polynomial", "calculus",
         "algebra", "geometry", "arithmetic", "fraction", "fractions", "percent", "percentage", "prime", "primes",
         "factorial", "logarithm", "square root", "triangle", "hypotenuse", "circle", "radius", "diameter",
         "perimeter", "inequality", "modulo", "divisible", "integers", "real numbers", "irrational", "rational",
         "convergence", "converges", "diverges", "quadratic", "simplify", "factor", "expected value", "variance",
         "standard deviation", "combinatorics", "permutations", "combinations", "vector", "vectors", "determinant",
         "gcd", "lcm", "trigonometry", "sine", "cosine", "slope", "intercept", "parabola", "exponent", "infinitely",
         "puzzle", "riddle", "roots", "confidence interval", "maximize", "minimize", "converge", "infinity",
         "liters", "litres", "gallons", "kilometers", "kilograms", "how many ways"],
        ["sum", "average", "mean", "median", "ratio", "area", "volume", "angle", "limit", "series", "product",
         "remainder", "total", "twice", "half", "dozen", "per", "each", "cents", "dollars", "miles", "hours",
         "minutes", "pounds", "times", "numbers", "number", "calculate", "compute"],
    ),
    "docs": (
        ["summarize", "summarise", "summary", "translate", "translation", "rewrite", "rephrase", "paraphrase",
         "proofread", "document", "article", "paragraph", "passage", "essay", "email", "letter", "draft", "tone",
         "grammar", "headline", "memo", "blog", "resume", "cv", "transcript", "excerpt", "bullet points",
         "cover letter",
         "press release", "meeting notes", "minutes of the meeting", "wording", "concise", "formal", "informal",
         "poem", "story", "haiku", "limerick", "narrative", "prose", "outline", "abstract"],
        ["text", "report", "title", "copy", "write", "sentence", "sentences", "words", "style", "reader", "audience",
         "paragraphs", "pages", "chapter", "author", "quote", "review", "describe", "description"],
    ),
    "chat": (
        ["hi", "hello", "hey", "thanks", "thank", "recommend", "advice", "opinion", "favorite", "favourite", "ideas",
         "suggestions", "tips", "weekend", "vacation", "trip", "recipe", "movie", "movies", "book", "books", "music",
         "weather", "joke", "fun", "hobby", "gift", "gifts", "friend", "friends", "feel", "feeling", "life", "health",
         "travel", "restaurant", "dinner"],
        ["why", "who", "when", "where", "best", "good", "think", "should", "history", "famous", "difference between"],
    ),
}

# complexity vocabularies: whole words / phrases, counted once each
HARD = [
    "refactor", "refactoring", "architecture", "architect", "design a", "design an", "design the", "redesign",
    "optimize", "optimise", "optimization", "scalable", "scalability", "scale to", "concurrency", "concurrent",
    "distributed", "race condition", "race conditions", "deadlock", "deadlocks", "memory leak", "memory leaks",
    "thread-safe", "vulnerability", "vulnerabilities", "security review", "security audit", "migrate", "migration",
    "migrating", "prove", "proof", "proofs", "rigorous", "rigorously", "derive", "derivation", "step by step",
    "step-by-step", "in depth", "in-depth", "in detail", "detailed", "thorough", "thoroughly", "comprehensive",
    "analyze", "analyse", "analysis", "trade-offs", "tradeoffs", "trade-off", "compare and contrast", "edge cases",
    "production", "production-ready", "end-to-end", "from scratch", "multithreaded", "multi-threaded",
    "asynchronous", "performance", "benchmark", "benchmarks", "integral", "eigenvalues", "eigenvectors", "induction",
    "converge", "convergence", "differential", "complexity analysis", "across multiple files", "entire codebase",
    "full implementation", "literature review", "whitepaper", "white paper", "strategy", "nuanced", "critique",
    "formal proof", "implement a compiler", "implement an interpreter", "interpreter", "compiler", "consensus",
]
MODERATE = [
    "review", "debug", "debugging", "fix", "fixes", "fixing", "why does", "why is", "why do", "why isn't",
    "why doesn't", "why am i", "test", "tests", "unit tests", "improve", "compare", "implement", "implementation",
    "port", "handle", "validate", "error handling", "slow", "vectorize", "vectorise", "index", "indexes",
    "re-render", "re-renders", "rerender", "generic", "generics", "how do i fix", "how do i stop", "how can i fix",
    "what should i check", "schema", "pagination", "dependency", "plan", "time complexity", "show each step",
    "show the steps", "show your steps", "showing each step", "explain each step", "justify", "explain the reasoning",
    "without replacement", "constraint", "constraints", "interrupt", "in production", "under load", "write a class",
    "write a module", "write a service", "write a script", "write a program", "system of equations",
]
LONG_FORM = ["cover letter", "blog post", "press release", "essay", "article", "white paper", "whitepaper", "proposal",
             "report", "abstract", "speech", "chapter", "literature review", "business plan"]
ADVANCED_MATH = [
    "integral", "integrate", "eigenvalue", "eigenvalues", "eigenvector", "eigenvectors", "matrix", "matrices",
    "calculus", "confidence interval", "standard deviation", "combinatorics", "combinatorial", "how many ways",
    "expected value", "expected number", "converge", "converges", "convergence", "differential equation",
    "group of", "vector space", "maximize", "maximise", "minimize", "minimise", "hypothesis test", "regression",
]
SIMPLE = ["quick", "quickly", "simple", "short", "briefly", "brief", "one-liner", "one line", "in one sentence", "just",
          "tiny", "small", "basic", "easy", "what is", "what's", "who is", "who was", "when is", "when was",
          "when did", "define", "definition of", "how do i say"]
_WORD_COUNT = re.compile(r"\b\d{3,5}[- ]words?\b")


# ---------------------------------------------------------------- config: routing.tasks


@dataclass(slots=True)
class TaskSpec:
    """One class's configured signals (beyond or instead of the built-ins)."""

    name: str
    keywords: list[str] = field(default_factory=list)
    weak_keywords: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    weight: float = 1.0
    replace: bool = False


def _strings(value: Any, path: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected a list of strings")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{path}[{i}]: expected a string")
    return [v.strip().lower() for v in value]


def parse_tasks(raw: Any, path: str = "routing.tasks") -> dict[str, TaskSpec | None]:
    """Validate `routing.tasks`; a None value means the class is disabled. Errors name the key path."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of task name to its signals")
    out: dict[str, TaskSpec | None] = {}
    for name, spec in raw.items():
        where = f"{path}.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
            raise ConfigError(f"{where}: task names are lower-case words (a-z, 0-9, _ and -)")
        if spec is False:
            if name == DEFAULT_TASK:
                raise ConfigError(f"{where}: {DEFAULT_TASK!r} is the fallback class and cannot be disabled")
            out[name] = None
            continue
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise ConfigError(
                f"{where}: expected a mapping (keywords, weak_keywords, patterns, weight, replace) or false"
            )
        for key in spec:
            if key not in _TASK_KEYS:
                raise ConfigError(f"{where}.{key}: unknown key (expected one of {', '.join(_TASK_KEYS)})")
        patterns = spec.get("patterns")
        if patterns is not None and not isinstance(patterns, list):
            raise ConfigError(f"{where}.patterns: expected a list of strings")
        for i, p in enumerate(patterns or []):
            if not isinstance(p, str):
                raise ConfigError(f"{where}.patterns[{i}]: expected a string")
            try:
                re.compile(p, _RX)
            except re.error as e:
                raise ConfigError(f"{where}.patterns[{i}]: invalid regex ({e})") from None
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ConfigError(f"{where}.weight: expected a number >= 0")
        replace = spec.get("replace", False)
        if not isinstance(replace, bool):
            raise ConfigError(f"{where}.replace: expected true or false")
        out[name] = TaskSpec(
            name=name,
            keywords=_strings(spec.get("keywords"), f"{where}.keywords"),
            weak_keywords=_strings(spec.get("weak_keywords"), f"{where}.weak_keywords"),
            patterns=list(patterns or []),
            weight=float(weight),
            replace=replace,
        )
    return out


# ---------------------------------------------------------------- the classifier


class _Words:
    """A class's keywords, split into single words (set lookup) and phrases (substring + boundary check)."""

    __slots__ = ("firsts", "phrases", "weight", "words")

    def __init__(self, keywords: list[str], weight: float) -> None:
        self.weight = weight
        self.words = frozenset(k for k in keywords if _WORD.fullmatch(k))
        self.phrases: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
        for k in keywords:
            if not _WORD.fullmatch(k):
                first = (k.translate(_SPLIT).split() or [k])[0]
                rx = re.compile(r"(?<![\w])" + re.escape(k) + r"(?![\w])")
                self.phrases.setdefault(first, []).append((k, rx))
        self.firsts = frozenset(self.phrases)

    def hits(self, words: set[str], lowered: str) -> list[str]:
        """Distinct keywords present as whole words (phrases: only those whose first word is present)."""
        found = list(self.words & words)
        for first in self.firsts & words:
            for phrase, rx in self.phrases[first]:
                if phrase in lowered and rx.search(lowered):
                    found.append(phrase)
        return found


class _Signal:
    """A structural detector: fires when any alternative's trigger occurs and its regex (if any) matches."""

    __slots__ = ("alts", "name", "weight")

    def __init__(self, name: str, weight: float, alts: list[_Alt]) -> None:
        self.name = name
        self.weight = weight
        # (trigger, gate word or None, on original text?, regex): the longest word of a trigger must be in the
        # message's word set (a hash lookup) before the text is scanned; triggers match on word boundaries
        self.alts: list[tuple[str, str | None, bool, re.Pattern[str] | None]] = []
        for trigger, rx in alts:
            original = trigger.startswith("!")
            trigger = trigger[1:] if original else trigger
            substring = trigger.startswith("~")  # "~": the trigger may sit inside a longer word: no gate
            trigger = trigger[1:] if substring else trigger
            parts = trigger.lower().translate(_SPLIT).split()
            gate = None if substring or not parts else max(parts, key=len)
            self.alts.append((trigger, gate, original, None if rx is None else re.compile(rx, re.MULTILINE)))

    def fires(self, text: str, lowered: str, words: set[str]) -> bool:
        for trigger, gate, original, rx in self.alts:
            if gate is not None and gate not in words:
                continue
            hay = text if original else lowered
            i = hay.find(trigger)
            if i < 0:
                continue
            if rx is None:
                return True
            for _ in range(WINDOWS):  # the regex runs near the first few occurrences of its trigger only
                if rx.search(hay, max(0, i - WINDOW_BACK), i + WINDOW_AHEAD):
                    return True
                i = hay.find(trigger, i + 1)
                if i < 0:
                    break
        return False


@dataclass(slots=True)
class _Task:
    name: str
    structural: list[_Signal]
    strong: _Words
    weak: _Words
    patterns: list[tuple[str, float, re.Pattern[str]]]


def _view(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


class Classifier:
    """Built once from `routing.tasks`; `classify(prompt)` is pure and thread-safe."""

    def __init__(self, tasks: Any = None) -> None:
        specs = parse_tasks(tasks)
        self.tasks: list[_Task] = []
        names = [t for t in BUILTIN_TASKS if not (t in specs and specs[t] is None)]
        names += [n for n in specs if n not in BUILTIN_TASKS and specs[n] is not None]
        for name in names:
            spec = specs.get(name) or TaskSpec(name=name)
            builtin = name in BUILTIN_TASKS and not spec.replace
            kw, weak = KEYWORDS.get(name, ([], [])) if builtin else ([], [])
            structural = [_Signal(sig, w, alts) for sig, task, w, alts in STRUCTURAL if task == name and builtin]
            self.tasks.append(
                _Task(
                    name=name,
                    structural=structural,
                    strong=_Words(kw + spec.keywords, (1.0 if name == DEFAULT_TASK else 1.5) * spec.weight),
                    weak=_Words(weak + spec.weak_keywords, 0.5 * spec.weight),
                    patterns=[(p, 2.0 * spec.weight, re.compile(p, _RX)) for p in spec.patterns],
                )
            )
        self.names = [t.name for t in self.tasks]
        self.hard, self.moderate = _Words(HARD, 1.0), _Words(MODERATE, 1.0)
        self.long_form, self.advanced_math = _Words(LONG_FORM, 1.0), _Words(ADVANCED_MATH, 1.0)
        self.simple = _Words(SIMPLE, 1.0)

    # ------------------------------------------------------------ scoring

    def _score(
        self, text: str, factor: float, scores: dict[str, float], fired: dict[str, float]
    ) -> tuple[str, set[str]]:
        lowered = text.lower()
        words = set(lowered.translate(_SPLIT).split())
        for task in self.tasks:
            s = 0.0
            for sig in task.structural:
                if sig.fires(text, lowered, words):
                    s += sig.weight
                    fired[sig.name] = fired.get(sig.name, 0.0) + sig.weight * factor
            if task.name == "code" and task.structural and sum(t in text for t in CODE_TOKENS) >= 2:
                s += 1.0
                fired["code_tokens"] = fired.get("code_tokens", 0.0) + factor
            for _p, w, rx in task.patterns:
                if rx.search(text):
                    s += w
                    fired[f"pattern:{task.name}"] = fired.get(f"pattern:{task.name}", 0.0) + w * factor
            strong = task.strong.hits(words, lowered)
            weak = task.weak.hits(words, lowered)
            kw = min(4.5, len(strong) * task.strong.weight + min(2.0, len(weak) * task.weak.weight))
            if kw:
                s += kw
                key = f"keywords:{task.name}"
                fired[key] = fired.get(key, 0.0) + kw * factor
            scores[task.name] = scores.get(task.name, 0.0) + s * factor
        return lowered, words

    def classify(self, prompt: Prompt, tokens: int = 0, endpoint: str = "chat") -> Features:
        """Features of a request: task, complexity, confidence, signals (tokens are filled by the caller)."""
        f = Features(tokens=tokens)
        f.has_tools = bool(prompt.tools)
        f.has_images = bool(prompt.image_tokens)
        f.wants_json = prompt.wants_json
        f.max_output_tokens = prompt.max_output
        scores: dict[str, float] = {}
        fired: dict[str, float] = {}
        last, context = _split_turns(prompt)
        last_view = _view(last)
        lowered, words = self._score(last_view, 1.0, scores, fired)
        numbers = self._numbers(last_view, words, scores, fired)
        self._passage(last_view, numbers, scores, fired)
        if context:
            self._score(context, CONTEXT_WEIGHT, scores, fired)
        if DEFAULT_TASK in scores:
            scores[DEFAULT_TASK] += CHAT_PRIOR
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0] != DEFAULT_TASK))
        if endpoint == "embeddings" or not ranked:
            ranked = [(DEFAULT_TASK, CHAT_PRIOR)]
        f.task, top = ranked[0]
        second = ranked[1][1] if len(ranked) > 1 else 0.0
        margin = (top - second) / (top + second) if top > 0 else 0.0
        evidence = min(1.0, top / 3.0)
        f.confidence = round(min(1.0, 0.35 + 1.5 * margin) * (0.8 + 0.2 * evidence), 3)
        f.signals = [name for name, _ in sorted(fired.items(), key=lambda kv: -kv[1])]
        f.complexity = self._complexity(prompt, f, last_view, lowered, words, fired)
        return f

    def _numbers(self, view: str, words: set[str], scores: dict[str, float], fired: dict[str, float]) -> int:
        """Quantities (not years) plus a question about them make a word problem."""
        nums = [n for n in _numbers(view) if not _YEAR.fullmatch(n)]
        nums += [w for w in _NUM_WORDS if w in words]
        if "math" not in scores or not nums:
            return len(nums)
        if len(nums) == 1:
            if "word_problem" in fired:  # "how many liters are in 3.5 gallons?"
                scores["math"] += 1.5
                fired["word_problem"] += 1.5
            return 1
        asks = "word_problem" in fired or view.rstrip().endswith("?")
        if asks:
            scores["math"] += 3.0
            fired["word_problem"] = fired.get("word_problem", 0.0) + 3.0
        elif len(nums) >= 3 and any(n[0] == "$" or n[-1] == "%" for n in nums):
            scores["math"] += 1.5
            fired["quantities"] = 1.5
        return len(nums)

    def _passage(self, view: str, numbers: int, scores: dict[str, float], fired: dict[str, float]) -> None:
        """A short ask plus a pasted prose passage is docs work (answer, extract or rewrite from it)."""
        if "docs" not in scores or "```" in view:
            return
        ask, sep, rest = view.strip().partition("\n")
        if not sep or len(ask) > 400:
            rest, sep, ask = view.rstrip().rpartition("\n")
            if not sep or len(ask) > 400:
                return
        rest = rest.strip()
        if len(rest) < 200 or rest.count(". ") + rest.count(".\n") + rest.endswith(".") < 1:
            return
        sample = rest[:2000]
        if sum(map(sample.count, _CODE_CHARS)) / len(sample) > 0.02:
            return
        words = sample.count(" ") + 1
        if len(_FIRST_PERSON.findall(sample)) * 40 > words or numbers * 8 > words:
            return  # the user's own story, or a quantitative problem, not a pasted document
        scores["docs"] += 4.0
        fired["context_passage"] = 4.0
        if "word_problem" in fired and len(_numbers(ask)) < 2:
            scores["math"] -= fired.pop("word_problem")  # "how many ..." over a passage asks to read it

    def _complexity(
        self, prompt: Prompt, f: Features, view: str, lowered: str, words: set[str], fired: dict[str, float]
    ) -> str:
        score = 0.0
        t = f.tokens
        score += 0.0 if t < 150 else 0.5 if t < 500 else 1.5 if t < 1500 else 2.0 if t < 4000 else 3.0
        hard = self.hard.hits(words, lowered)
        moderate = self.moderate.hits(words, lowered)
        simple = len(self.simple.hits(words, lowered))
        score += min(3.0, 1.5 * len(hard)) + min(1.5, 0.75 * len(moderate)) - min(1.0, 0.5 * simple)
        long_form = self.long_form.hits(words, lowered)
        if _WORD_COUNT.search(lowered):
            long_form.append("n words")
        if (long_form and "compose" in fired) or len(long_form) > 1:
            score += 1.5
            f.signals.append("long_form")
        if self.advanced_math.hits(words, lowered):
            score += 1.5
            f.signals.append("advanced_math")
        if "stack_trace" in fired:
            score += 1.5
        if "code_fence" in fired or "code_syntax" in fired:
            score += 0.5
        if "file_paths" in fired and len(set(_SOURCE_FILE.findall(view))) >= 3:
            score += 1.5
            f.signals.append("many_files")
        if "diff" in fired:
            score += 1.0
        if "proof" in fired:
            score += 2.0
        turns = sum(1 for r in prompt.roles if r in ("user", "assistant"))
        if turns >= 6:
            score += 1.0 if turns < 12 else 2.0
            f.signals.append(f"depth:{turns}")
        if len(prompt.system) > 800:
            score += 0.5
            f.signals.append("long_system_prompt")
        elif prompt.system:
            f.signals.append("system_prompt")
        if prompt.tools:
            score += 0.5 if len(prompt.tools) < 5 else 1.0
            f.signals.append(f"tools:{len(prompt.tools)}")
        if prompt.wants_json:
            score += 0.5
            f.signals.append("response_format:json")
        if prompt.image_tokens:
            f.signals.append(f"images:{len(prompt.image_tokens)}")
        if prompt.max_output:
            score += 1.5 if prompt.max_output >= 4000 else 0.75 if prompt.max_output >= 1500 else 0.0
            score -= 0.5 if prompt.max_output <= 200 else 0.0
            f.signals.append(f"max_tokens:{prompt.max_output}")
        return "low" if score < LOW_BELOW else "medium" if score < HIGH_FROM else "high"


def _numbers(text: str) -> list[str]:
    """Quantities in a text: integers, decimals, money and percentages; not times, dates, paths, IPs or versions."""
    out = []
    for n in _NUM.findall(text):
        if n[0] in ":/." or ":" in n or "/" in n:
            continue
        n = n.rstrip(".,")
        if n.count(".") < 2:
            out.append(n)
    return out


def _split_turns(prompt: Prompt) -> tuple[str, str]:
    """The last user message, and a bounded view of the system prompt and recent earlier turns."""
    roles, contents = prompt.roles, prompt.contents
    last_i = max((i for i, r in enumerate(roles) if r == "user"), default=len(roles) - 1)
    if last_i < 0:
        return "", ""
    parts = [contents[i][:TURN_CHARS] for i in range(max(0, last_i - MAX_TURNS), last_i) if roles[i] != "system"]
    if prompt.system:
        parts.append(prompt.system[:TURN_CHARS])
    return contents[last_i], "\n".join(parts)
