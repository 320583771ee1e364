"""The classifier's built-in evidence: structural signals, keyword lists and complexity vocabularies.

Data only, read once when `router.routing.classifier.Classifier` is built: which literal triggers and regexes
mark code, math, docs and chat (`STRUCTURAL`, with the extra words some regexes cannot match without in
`NEEDS`), the per-task keywords (`KEYWORDS`), and the words that make a request look hard, moderate,
long-form, advanced or simple. Users extend or replace these through `routing.tasks` (see the
classifier's docstring); edit here to change the defaults.
"""

from __future__ import annotations

import re

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
# = r"\b\d+" in a search, written to start with \d so the regex engine scans for a digit first (about 2x faster)
_D = r"\d(?<!\w\d)\d*"
_KIN = r"(?:father|mother|brother|sister|son|daughter|uncle|aunt|husband|wife)"
_KIN_CHAIN = r"\b" + _KIN + r"'s (?:" + _KIN[3:-1] + r"|only son|only daughter|only child)\b"
_ASKS_WHO = r"(?:\bwho(?: is|'s| was| are)\b|\bwhom\b|\brelated\b|\brelation)"
_OF_MY_PT = (" do meu ", " da minha ")  # "o filho do meu pai": a kinship chain in Portuguese
_CROSS = ("cross", "across", "crossing", "crosses")
_WATERS = ("rio", "río", "riacho", "arroyo", "ponte", "puente", "lago")  # what a crossing puzzle crosses (pt, es)
_DOC_LEADS = ("based on", "according to", "using", "from", "out of")  # "... this text": what to read it from
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
        ("for ", r"^[ \t]*for \w+ in [\w.()\[\]]+:[ \t]*$"),
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
    ("code_write", "code", 2.0, [
        (verb, verb + r"\b(?: \S+){0,6}? (?:function|program|class|script|module|service|api|parser|algorithm|app|cli"
                      r"|library|server|solver|cache|queue|data structure|component|hook|decorator|iterator|endpoint"
                      r"|handler|middleware|crawler|scraper|bot|plugin|interpreter|compiler|emulator|simulator"
                      r"|unit tests|query|queries|regex|worker pool|pool|workers|migration"
                      r"|função|funcao|programa|classe|algoritmo|función|funcion|clase|módulo|servicio|serviço"
                      r"|servidor|fila|cola)s?\b")
        for verb in ("write", "implement", "build", "create", "develop", "code", "design", "complete", "finish",
                     "escreva", "implemente", "crie", "desenvolva", "complete", "escribe", "implementa", "crea",
                     "desarrolla", "completa")
    ]),
    ("math_notation", "math", 3.0, [
        ("\\", r"\\(?:frac|sqrt|int|sum|prod|lim|cdot|times|alpha|beta|theta|lambda|infty|leq|geq|neq|mathbb|binom"
               r"|partial)\b"),
        ("^", r"\b\d*[a-z]\^\d"), ("=", r"\b\d+\s*[a-z]\s*[+\-]\s*\d+\s*=|\b[a-z]\s*\(\s*[a-z]\s*\)\s*="),
        ("~/d", r"\bd[xy]/d[xyt]\b"), ("% of", _D + r"(?:\.\d+)?\s*%\s+of\s+\$?\d"), ("/(", _D + r"/\("),
        (" to infinity", None), ("how many ways", None), ("mod ", r"\bmod \d+\b"),
        ("*", _D + r"(?:\.\d+)?\s*\*\s*\d+(?:\.\d+)?"), (" + ", _D + r"(?:\.\d+)?\s\+\s\d+(?:\.\d+)?\s*(?:=|\?|$)"),
        (" - ", _D + r"(?:\.\d+)?\s-\s\d+(?:\.\d+)?\s*(?:=|\?|$)"), ("/", _D + r"/\d+\s*[+\-*]\s*\d+/\d+"),
        ("~10^", r"\d\s*(?:x|\u00d7|\*)\s*10\^[-\u2212]?\d"),  # scientific notation: 1.8 x 10^-5
        ("", "[\u222b\u2211\u220f\u221a\u03c0\u2264\u2265\u2260\u221e\u2202\u2208\u2200\u2203\u00d7\u00f7]"),
    ]),
    ("word_problem", "math", 0.5, [
        ("how ", r"\bhow (?:many|much|long|far|fast|old|often)\b"),
        ("what ", r"\bwhat (?:is|was|were|are) the (?:total|sum|difference|average|mean|median|product|probability"
                  r"|percentage|ratio|area|perimeter|volume|remainder|value|cost|price|profit|speed|rate)\b"),
        ("what percent", None), ("in total", None), ("altogether", None),
    ] + [(w, w + r" (?:\w+ ){0,5}?(?:vai|vão|tem|têm|terá|custa|custam|sobr|faltam|gast|pag|rest|ganh|vend|compr"
                 r"|precis|leva|levam|dura|é|são|foi|foram|há)")
         for w in ("quanto", "quanta", "quantos", "quantas")] + [
    ] + [(w, w + r" (?:\w+ ){0,5}?(?:va|van|tiene|tienen|tendrá|cuesta|cuestan|sobr|faltan|gast|pag|rest|gan|vend"
                 r"|compr|necesit|tarda|dura|es|son|fue|fueron|hay|habrá)") for w in ("cuánto", "cuánta", "cuántos",
                                                                                     "cuántas")] + [
        ("calcule", None), ("calcula ", None), ("resolva", None), ("resuelve", None), ("encontre", None),
        ("encuentra", None), ("determine", None),
    ] + [(verb, verb + r" (?:the |his |her |their |its |how )") for verb in (
        "find", "calculate", "compute", "determine", "work out")] + [
    ]),
    ("proof", "math", 3.0, [
        ("demonstre", None), ("demuestra", None), ("demuestre", None), ("prove que", None), ("mostre que", None),
        (" that", r"(?:^|[.!?:]\s+)(?:prove|show|demonstrate) that\b"), ("proof of", None), ("proof that", None),
        ("by induction", None), ("lemma", None), ("theorem", None), ("corollary", None), ("if and only if", None),
    ]),
    ("summarize", "docs", 3.5, [
    ] + [(w, None) for w in ("summarize", "summarise", "summary", "summarizing", "summarising", "summarization")] + [
        ("tl;dr", None), ("tldr", None), ("recap", None),
        ("resuma", None), ("resumir", None), ("resumo", None), ("resumen", None), ("resume en", None),
        ("resume el", None), ("resume este", None), ("resume esta", None), ("resume eso", None), ("resume esto", None),
        ("resúmelo", None), ("resumelo", None), ("sintetize", None), ("sintetiza", None),
        ("condense", None), ("key points", None), ("main points", None), ("key takeaways", None), ("gist", r"\bgist\b"),
        ("given ", r"\bgiven (?:this|the|that) (?:paragraph|text|passage|article|document|excerpt)\b"),
        ("in ", r"\bin (?:one|two|three|a few|\d) (?:sentences?|bullet points?|paragraphs?|words)\b"),
    ]),
    ("translate", "docs", 3.5, [
        ("translate", None), ("translation", None), ("translating", None),
        ("traduza", None), ("traduzir", None), ("tradução", None), ("traduce", None), ("traducir", None),
        ("traducción", None), ("traduzca", None),
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
        ("reescreva", None), ("reescrever", None), ("reescribe", None), ("reescribir", None), ("reformule", None),
        ("corrija", None), ("revise o texto", None), ("corrige los", None), ("corrige el", None),
        ("corrige la", None), ("corrige este", None), ("corrige esta", None), ("ortografia", None),
        ("ortografía", None), ("gramática", None), ("mais formal", None), ("más formal", None),
        # "make it shorter" and the like: a follow-up that rewrites the previous answer
        ("make it shorter", None), ("make it a bit shorter", None), ("make it a little shorter", None),
        ("make this shorter", None), ("make that shorter", None), ("keep it shorter", None),
        ("hazlo", r"\bhazlo (?:un poco |mucho )?m[aá]s (?:corto|breve|sencillo|simple|claro|formal|informal)\b"),
        ("hazla", r"\bhazla (?:un poco |mucho )?m[aá]s (?:corta|breve|sencilla|simple|clara|formal|informal)\b"),
    ] + [(verb, r"\b" + verb + r" (?:isso |isto |o texto |a resposta )?mais (?:curto|curta|breve|simples|claro|clara"
                r"|formal|informal)\b") for verb in ("deixe", "deixa", "torne", "torna")] + [
        ("encurte", None), ("acórtalo", None), ("acortalo", None), ("acórtala", None),
    ]),
    ("extract", "docs", 3.5, [
        ("extract", r"\bextract\b"),
    ] + [(verb + " all ", verb + r" all (?:of )?(?:the )?(?:\w+ ){0,2}(?:names?|dates?|entities|people|places|numbers"
                               r"|emails|items|companies|locations|mentions)\b")
         for verb in ("list", "find", "pull out", "identify")]
      + [(lead, lead + r" (?:the|this) (?:text|passage|article|paragraph|document|reference|excerpt|context|email"
                       r"|transcript|report)\b") for lead in _DOC_LEADS] + [
        ("extraia", None), ("extrae", None), ("extraer", None), ("extrair", None),
        ("texto", r"\b(?:neste|deste|nesse|desse|no|do|en este|de este|en el|del) texto\b"),
    ]),
    ("compose", "docs", 3.0, [
    ] + [(verb, verb + r" (?:me )?(?:a|an|the|some|two|three|our|my|this) (?:[\w-]+ ){0,3}?(?:email|e-mail|letter"
              r"|essay|paragraph|story|poem|blog|article|cover letter|speech|memo|bio|biography"
              r"|announcement|tweet|post|press release|haiku|limerick|song|lyrics|toast|eulogy|newsletter|slogan"
              r"|tagline|product description|review|summary|abstract|headline|caption|message|note|invitation|proposal"
              r"|report|outline|scene|dialogue|monologue|screenplay|character|sonnet|ode|ballad|stanza|jingle)s?\b")
          for verb in ("write", "draft", "compose", "create")] + [
        (verb, verb + r" (?:um|uma|o|a|un|una|el|la|me) (?:[\w-]+ ){0,3}?(?:e-?mail|carta|poema|poesia|poesía|conto"
                      r"|cuento|história|historia|texto|redação|redacción|artigo|artículo|mensagem|mensaje|correo"
                      r"|discurso|post|tweet|parágrafo|párrafo|ensaio|ensayo|resenha|reseña|anúncio|anuncio|soneto|oda|ode|balada)s?\b")
        for verb in ("escreva", "escrever", "escribe", "escribir", "redija", "redacta")]),
    ("logic_puzzle", "reasoning", 4.0, [
        ("riddle", None), ("puzzle", None), ("brain teaser", None), ("brainteaser", None), ("knights", None),
        ("knaves", None), ("always lies", None), ("always tells the truth", None), ("tells the truth", None),
        ("odd one out", None), ("does not belong", None), ("doesn't belong", None), ("can we conclude", None),
        ("can you conclude", None), ("does it follow", None), ("necessarily true", None), ("must be true", None),
        ("true, false, or uncertain", None), ("true, false or uncertain", None), ("syllogism", None),
        ("premises", None), ("enigma", None), ("charada", None), ("quebra-cabeça", None), ("acertijo", None),
        ("adivinanza", None), ("rompecabezas", None), ("what place am i", None), ("what position am i", None),
        ("who sits where", None), ("who has which", None), ("who owns which", None), ("which is which", None),
        ("quem tem cada", None), ("quién tiene cada", None), ("related to me", None),
        ("relationship between", r"\bwhat is the relationship between \w+ and \w+\b"),
        ("related to", r"\bhow (?:is|are) [\w' ]{1,40} related to\b"),
        ("each", r"\b(?:sisters?|brothers?|siblings?)\b[^?]{0,64}\beach\b[^?]{0,80}\b(?:sisters?|brothers?"
                 r"|siblings?)\b"),
        ("cada", r"\b(?:irmãs?|irmãos?|hermanas?|hermanos?)\b[^?]{0,64}\bcada\b[^?]{0,80}\b(?:irmãs?|irmãos?|hermanas?"
                 r"|hermanos?)\b"),
    ] + [(w, w + r"\b[^?]{0,80}\b(?:position|place)\b") for w in ("overtake", "overtaken", "overtaking", "overtook")]
      + [
        ("ontem fosse", None), ("ayer fuera", None), ("day after tomorrow", r"\bif (?:yesterday|tomorrow|today)\b"),
        ("truth table", None), ("predicate logic", None), ("propositional logic", None), ("valid or invalid", None),
        ("counterexample", None), ("identify the conclusion", None), ("the following argument", None),
        ("tautology", None), ("scenario 1", None), ("which of these two scenarios", None),
        ("lógica proposicional", None),
        ("mislabeled", None), ("mislabelled", None), ("label is wrong", None), ("labels are wrong", None),
        ("labelled wrong", None), ("labeled wrong", None), ("labelled incorrectly", None),
        ("labeled incorrectly", None), ("etiquetas", r"\betiquetas (?:estão|están) (?:erradas|mal)\b"),
        ("only one", r"\bonly one (?:of (?:them|us|the \w+) )?(?:is telling|tells|told|says|said|is lying|lies)\b"),
        ("solo uno", r"\bsolo uno (?:de ellos )?(?:dice|miente|mintió)\b"),
        ("apenas um", r"\bapenas um (?:deles )?(?:diz|fala|mente|mentiu)\b"),
        ("sits", r"\bsits? (?:immediately |directly )?(?:to the )?(?:left|right) of\b"),
        ("de cada um", r"\b(?:qual|quais) (?:é |são )?(?:a |as |o |os )?\w+ de cada um\b"),
        ("de cada uno", r"\b(?:cuál|cuáles) (?:es |son )?(?:la |las |el |los )?\w+ de cada uno\b"),
        ("each person", r"\bwhat (?:is|are) each person's\b"),
        # a syllogism: two quantified statements in a row ("some glorps are trinks and all trinks are flubs")
        (" are ", r"\b(?:all|some|no) (?:[\w-]+ ){1,2}?are (?:[\w-]+ )?[\w-]+[.,;]?\s+(?:and |but |while |if |so )?"
                  r"(?:all|some|no|every) (?:[\w-]+ ){1,2}?(?:are|is)\b"),
        ("todos ", r"\btod[oa]s (?:l[oa]s |[oa]s )?[\w-]+ (?:son|são) [^.?!;]{1,60}?[.,;]?\s+(?:y |e |pero |mas )?"
                   r"(?:algun[oa]s|algumas|alguns|ningún|ninguna|nenhum|nenhuma|tod[oa]s) "),
        # a kinship riddle: relations chained through one another ("that man's father is my father's son") and a
        # question of who someone is or how they are related
        *((kin + "'s ", _ASKS_WHO + r"[^\n]{0,200}?" + _KIN_CHAIN + "|" + _KIN_CHAIN + r"[^\n]{0,200}?" + _ASKS_WHO)
          for kin in ("father", "mother", "brother", "sister", "son", "daughter")),
        (" of my ", r"\b(?:son|daughter|brother|sister|father|mother) of my (?:father|mother|brother|sister|son"
                    r"|daughter)\b"),
        *((of_my, r"\b(?:filh[oa]|irmão|irmã|pai|mãe) d[oa] (?:meu|minha) (?:pai|mãe|irmão|irmã|filho|filha)\b")
          for of_my in _OF_MY_PT),
        (" de mi ", r"\b(?:hij[oa]|herman[oa]|padre|madre) de mi (?:padre|madre|herman[oa]|hij[oa])\b"),
        # a crossing puzzle: who goes over with whom, under a capacity or a light to share
        *((w, r"\b(?:cross|across|crossing|crosses) (?:a |the )?(?:river|stream|creek|bridge|lake|canal|moat)\b")
          for w in _CROSS),
        *((water, r"\b(?:atravessar|travessia|cruzar|atravesar|outro lado|otro lado) (?:o |a |el |un |um |uma |una "
                  r"|do |del )?(?:rio|río|riacho|arroyo|ponte|puente|lago)\b") for water in _WATERS),
        # an ordering puzzle: the order to deduce from relative places ("Mara finished immediately after Lu")
        ("order", r"\b(?:finishing|seating|final|exact|correct) order\b|\bin (?:what|which) order did\b"
                  r"|\bwhat (?:was|is) the (?:order|ranking)\b"),
        ("ordem", r"\bem que ordem (?:eles|elas|chegaram|terminaram)\b|\bordem de (?:chegada|classificação)\b"),
        ("orden", r"\ben qué orden (?:llegaron|terminaron|quedaron)\b|\borden de (?:llegada|clasificación)\b"),
        # weighing puzzles: the odd coin or ball found in a few weighings on a balance
        ("balance scale", None), ("pan balance", None), ("weighings", None),
        ("weighing", r"\b(?:one|two|three|four|\d) weighings?\b"), ("balança de dois pratos", None),
        ("balança de pratos", None), ("balanza de dos platillos", None), ("balanza de platillos", None),
        ("pesagens", None), ("pesajes", None),
        # truth-tellers and liars, in Portuguese and Spanish ("always lies" above)
        ("siempre mienten", None), ("siempre miente", None), ("siempre dicen la verdad", None),
        ("siempre dice la verdad", None), ("sempre mentem", None), ("sempre mente", None),
        ("sempre dizem a verdade", None), ("sempre diz a verdade", None), ("sempre falam a verdade", None),
        ("sempre fala a verdade", None),
        ("who", r"\bwho (?:\w+ ){0,3}?(?:first|second|third|fourth|fifth|last|oldest|youngest|tallest|shortest"
                r"|in the middle)\b"),
        ("quem", r"\bquem (?:\w+ ){0,3}?(?:primeiro|segundo|terceiro|quarto|último|mais velh[oa]|mais nov[oa])\b"),
        ("quién", r"\bquién (?:\w+ ){0,3}?(?:primero|segundo|tercero|cuarto|último|mayor|menor)\b"),
    ]),
    # letters as constraints, which a model that reads tokens cannot see: lipograms, every word with one initial
    ("letter_constraint", "docs", 0.0, [(p, None) for p in (
        "without the letter", "without using the letter", "sin la letra", "sin usar la letra", "sem a letra",
        "sem usar a letra", "start with the letter", "starts with the letter", "begin with the letter",
        "begins with the letter", "empiecen por la letra", "empiece por la letra", "empiecen con la letra",
        "empiezan por la letra", "comecem com a letra", "comece com a letra", "comecem pela letra",
        "começam com a letra", "lipogram", "lipograma")]),
    ("reasoning_ask", "reasoning", 2.0, [
        ("explain your reasoning", None), ("show your reasoning", None), ("reasoning steps", None),
        ("think step by step", None), ("explain your logic", None), ("explique o raciocínio", None),
        ("explique seu raciocínio", None), ("justifique", None), ("razona", None), ("razonamiento", None),
        ("raciocínio", None), ("explica tu razonamiento", None), ("lógica", None),
    ]),
    ("analysis", "reasoning", 2.0, [
        ("trade-offs", None), ("tradeoffs", None), ("hypotheses", None), ("root cause", None),
        ("prós e contras", None), ("pros y contras", None), ("ventajas y desventajas", None), ("analise", None),
        ("analiza", None), ("analyze the", None), ("analyse the", None), ("weigh the", None),
        ("flaws in", r"\bflaws? in (?:the|this|my) (?:argument|reasoning|logic)\b"), ("assumptions", None),
        ("valid schedule", None), ("decision plan", None), ("plano de decisão", None), ("plan de decisión", None),
        ("pontos de decisão", None), ("puntos de decisión", None),
    ]),
    ("multiple_choice", "chat", 0.0, [  # options on their own lines: the answer is one of them, not a text to edit
        ("\nb. ", r"\nb\. [^\n]+\nc\. "), ("\nb) ", r"\nb\) [^\n]+\nc\) "), ("\n(b) ", r"\n\(b\) [^\n]+\n\(c\) "),
    ]),
    ("greeting", "chat", 1.5, [
        ("", r"\A\W*(?:hi|hello|hey|yo|good (?:morning|afternoon|evening)|thanks|thank you|how are you|what's up"
             r"|oi|olá|ola|hola|bom dia|boa tarde|boa noite|buenos días|buenas tardes|buenas noches|obrigad[oa]"
             r"|muito obrigad[oa]|gracias|muchas gracias|qué tal|tudo bem)\b"),
    ]),
    ("advice", "chat", 1.5, [
    ] + [(lead, lead + r" (?:some |a few |\w+ )?(?:ideas|tips|suggestions|advice|ways|recommendations)\b")
         for lead in ("give me", "suggest", "recommend", "any")] + [
        ("should i", None), ("what do you think", None), ("your opinion", None), ("your favorite", None),
        ("your favourite", None), ("help me decide", None), ("help me choose", None), ("help me plan", None),
        ("pros and cons", None), ("brainstorm", None),
    ]),
]

# Words an alternative's regex cannot match without (each group: at least one of its words must be among the
# text's whole words). A sound pre-filter, checked with C-level set operations before any regex runs: on prose,
# common gates ("to", "in", "how", "what", "that") would otherwise run their regexes for nothing.
_LANGUAGES = ("french", "german", "spanish", "italian", "portuguese", "japanese", "chinese", "mandarin", "korean",
              "russian", "arabic", "hindi", "dutch", "polish", "turkish", "swedish", "greek", "hebrew", "ukrainian",
              "vietnamese")
_DOC_NOUNS = ("text", "passage", "article", "paragraph", "document", "reference", "excerpt", "context", "email",
              "transcript", "report")
_ADVICE_NOUNS = ("ideas", "tips", "suggestions", "advice", "ways", "recommendations")
_EXTRACT_NOUNS = ("name", "names", "date", "dates", "entities", "people", "places", "numbers", "emails", "items",
                  "companies", "locations", "mentions")
_COMPOSE_NOUNS = tuple(
    w + s for n in (
        "email", "mail", "letter", "essay", "paragraph", "story", "poem", "blog", "article", "speech", "memo", "bio",
        "biography", "announcement", "tweet", "post", "release", "haiku", "limerick", "song", "lyrics", "toast",
        "eulogy", "newsletter", "slogan", "tagline", "description", "review", "summary", "abstract", "headline",
        "caption", "message", "note", "invitation", "proposal", "report", "outline", "scene", "dialogue",
        "monologue", "screenplay", "character", "sonnet", "ode", "ballad", "stanza", "jingle") for w in [n]
    for s in ("", "s"))
_WRITING = ("wording", "tone", "flow", "prose", "writing", "draft")
Need = tuple[tuple[str, ...], ...]
NEEDS: dict[tuple[str, str], Need] = {
    ("word_problem", "how "): (("many", "much", "long", "far", "fast", "old", "often"),),
    ("word_problem", "what "): (
        ("is", "was", "were", "are"),
        ("total", "sum", "difference", "average", "mean", "median", "product", "probability", "percentage", "ratio",
         "area", "perimeter", "volume", "remainder", "value", "cost", "price", "profit", "speed", "rate"),
    ),
    **{("word_problem", v): (("the", "his", "her", "their", "its", "how"),)
       for v in ("find", "calculate", "compute", "determine", "work out")},
    ("proof", " that"): (("prove", "show", "demonstrate"),),
    ("logic_puzzle", "each"): (("sister", "sisters", "brother", "brothers", "sibling", "siblings"),),
    ("logic_puzzle", "cada"): (("irmã", "irmãs", "irmão", "irmãos", "hermana", "hermanas", "hermano", "hermanos"),),
    ("logic_puzzle", "related to"): (("is", "are"), ("how",)),
    # an ordering puzzle: "who finished third?" after relations between them
    ("logic_puzzle", "who"): (("than", "before", "after"),),
    ("logic_puzzle", "quem"): (("antes", "depois", "mais"),),
    ("logic_puzzle", "quién"): (("antes", "después", "más", "mayor", "menor"),),
    ("logic_puzzle", " are "): (("some", "no", "every", "all"),),
    ("logic_puzzle", "todos "): (("son", "são"),),
    # a chain of relations is a riddle when the text asks who someone is or how people are related
    **{("logic_puzzle", kin + "'s "): (("who", "whom", "related", "relation", "relationship"),)
       for kin in ("father", "mother", "brother", "sister", "son", "daughter")},
    ("logic_puzzle", " of my "): (("who", "whom", "related", "relation", "relationship"),),
    **{("logic_puzzle", of_my): (("quem", "parentesco", "relação"),) for of_my in _OF_MY_PT},
    ("logic_puzzle", " de mi "): (("quién", "parentesco", "relación"),),
    # ... and the limit that makes it a puzzle ("only one at a time", "the boat holds two", "17 minutes")
    **{("logic_puzzle", w): (("boat", "raft", "canoe", "ferry", "torch", "flashlight", "lantern"),
                             ("only", "alone", "hold", "holds", "carry", "carries", "safely", "minutes"))
       for w in _CROSS},
    ("logic_puzzle", "order"): (("before", "after", "ahead", "behind", "than", "immediately", "last", "next"),),
    ("logic_puzzle", "ordem"): (("antes", "depois", "atrás", "frente", "logo", "último", "última"),),
    ("logic_puzzle", "orden"): (("antes", "después", "detrás", "delante", "justo", "último", "última"),),
    **{("logic_puzzle", water): (("barco", "bote", "barca", "canoa", "lanterna", "linterna"),
                                 ("só", "sozinho", "sozinha", "apenas", "solo", "sola", "cabe", "caben", "leva",
                                  "levar", "lleva", "llevar", "minutos", "vez")) for water in _WATERS},
    ("summarize", "given "): (("paragraph", "text", "passage", "article", "document", "excerpt"),),
    ("summarize", "in "): (("sentence", "sentences", "bullet", "paragraph", "paragraphs", "words"),),
    ("translate", "to "): (_LANGUAGES,),
    ("rewrite", "following"): (("passage", "text", "paragraph", "sentence", "sentences"),),
    ("rewrite", "fix "): (("grammar", "spelling", "typos", "punctuation"),),
    ("rewrite", "make "): (("more", "less", "sound"),),
    ("rewrite", "improve "): (_WRITING,),
    ("rewrite", "tighten "): (_WRITING,),
    ("rewrite", "more "): (("formal", "concise", "professional"),),
    **{("extract", v + " all "): (_EXTRACT_NOUNS,) for v in ("list", "find", "pull out", "identify")},
    **{("extract", lead): (("the", "this"), _DOC_NOUNS) for lead in _DOC_LEADS},
    **{("compose", v): (_COMPOSE_NOUNS,) for v in ("write", "draft", "compose", "create")},
    **{("advice", lead): (_ADVICE_NOUNS,) for lead in ("give me", "suggest", "recommend", "any")},
    ("shell", "one-liner"): (("bash", "zsh", "shell", "terminal", "awk", "sed"),),
    ("shell", "command"): (("bash", "shell", "terminal"),),
    ("shell", "!-"): (("grep", "awk", "sed", "chmod", "chown", "curl", "wget", "kubectl", "docker", "ssh", "rsync",
                       "tar", "find", "ls", "cp", "mv", "rm", "pip", "npm", "git", "systemctl", "brew", "apt"),),
}

# A punctuation mark the regex of an alternative whose trigger has none cannot match without: the alternative is
# only tried on texts holding that mark (a C-level byte search) instead of on every text.
MARKS: dict[tuple[str, str], str] = {
    ("stack_trace", "!~Error"): ":", ("stack_trace", "!~Exception"): ":", ("stack_trace", "!    at "): "(",
    ("code_syntax", "for "): ":",
}

# Regexes of which an alternative's regex cannot match a window without one matching in it too, tried first: each
# starts with a literal character (a fast scan), where the alternative's own regex starts with \b and is tried at
# every position (code is full of "=" triggers, and their windows rarely hold an equation).
PREFILTERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("math_notation", "="): (r"\)\s*=", r"\+\s*\d+\s*=", r"-\s*\d+\s*="),
    ("math_notation", "^"): (r"\^\d",),
    ("code_syntax", "for "): (r" in [\w.()\[\]]+:[ \t]*$",),  # a for-loop header: "... in items:" ends its line
}

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
         "bigquery", "spark", "kafka", "grpc", "protobuf", "websocket", "websockets", "env var", "localhost",
         "list comprehension", "comprehension", "generics",
         "código", "codigo", "função", "funcao", "función", "funcion", "algoritmo", "programação", "programación",
         "depurar", "compilar", "subcadena", "substring", "palindrome", "palíndromo", "palindrómica", "vetor circular",
         "banco de dados", "base de datos", "fastapi", "pytest", "productor-consumidor", "consulta sql",
         "recursiva", "recursivo", "memoização", "memoización", "goroutines", "estoura a pilha", "desborda la pila"],
        ["list", "string", "strings", "array", "arrays", "loop", "query", "index", "deploy", "server", "library",
         "package", "module", "test", "tests", "error", "crash", "crashes", "build", "syntax", "runtime", "thread",
         "object", "parse", "parser", "input", "output", "return", "returns", "dictionary", "file", "files",
         "arquivo", "archivo", "lista", "interface", "cadena", "string", "consulta", "programa", "erro", "classe",
         "clase",
         "variável", "servidor", "biblioteca", "implemente", "implementa", "entero", "inteiro", "vetor", "arreglo"],
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
         "roots", "confidence interval", "maximize", "minimize", "converge", "infinity",
         "liters", "litres", "gallons", "kilometers", "kilograms", "how many ways",
         "equação", "equações", "ecuación", "ecuaciones", "derivada", "integral", "probabilidade", "probabilidad",
         "porcentagem", "porcentaje", "juros", "interés compuesto", "raiz quadrada", "raíz cuadrada", "triângulo",
         "triángulo", "teorema", "polinômio", "polinomio", "fração", "fracción", "frações", "fracciones",
         "matriz", "vetor", "vector", "logaritmo", "quadrática", "cuadrática", "hipotenusa", "perímetro", "área",
         "volumen", "divisível", "divisible", "primos", "cone", "cono", "cilindro", "esfera", "algarismos",
         "dígitos", "permutaciones", "permutações", "combinaciones", "combinações", "combinatoria", "combinatória"],
        ["sum", "average", "mean", "median", "ratio", "area", "volume", "angle", "limit", "series", "product",
         "remainder", "total", "twice", "half", "dozen", "per", "each", "cents", "dollars", "miles", "hours",
         "minutes", "pounds", "times", "numbers", "number", "calculate", "compute", "quanto", "quantos", "quantas",
         "cuánto", "cuántos", "cuántas", "média", "media", "soma", "suma", "total", "metade", "mitad", "dobro",
         "doble", "triplo", "triple", "reais", "euros", "horas", "minutos", "vezes", "veces", "calcule", "calcula",
         "números", "cifras"],
    ),
    "reasoning": (
        ["puzzle", "puzzles", "riddle", "riddles", "logic", "logical", "logically", "deduce", "deduction",
         "deductive", "inference", "infer", "premise", "premises", "syllogism", "paradox", "dilemma", "hypotheses",
         "contradiction", "contradict", "contradicts",
         "contradicen", "contradice", "contradizem", "contradiz", "knights", "knaves", "liar", "liars", "truthful",
         "enigma",
         "charada", "acertijo", "adivinanza", "rompecabezas", "lógica", "lógico", "raciocínio", "razonamiento",
         "razona", "justifique", "deduzir", "deducir", "trade-offs", "tradeoffs", "trade-off", "analise", "analiza",
         "prós e contras", "pros y contras", "hipóteses", "hipótesis", "counterfactual", "reasoning"],
        ["conclude", "conclusion", "reason", "assume", "assumption", "assumptions", "evaluate", "strategy",
         "scenario", "scenarios", "schedule", "constraint", "constraints", "arrangement", "sequence", "analyze",
         "analyse", "analysis", "análisis", "análise", "implications", "decide", "decision", "options",
         "alternatives", "alternativas", "critérios", "criterios", "riscos", "riesgos", "plano", "plan"],
    ),
    "docs": (
        ["summarize", "summarise", "summary", "translate", "translation", "rewrite", "rephrase", "paraphrase",
         "proofread", "document", "article", "paragraph", "passage", "essay", "email", "letter", "draft", "tone",
         "grammar", "headline", "memo", "blog", "resume", "cv", "transcript", "excerpt", "bullet points",
         "cover letter",
         "press release", "meeting notes", "minutes of the meeting", "wording", "concise", "formal", "informal",
         "poem", "story", "haiku", "limerick", "narrative", "prose", "outline", "abstract", "traduza", "traduce",
         "resuma", "resumo", "resumen", "reescreva", "reescribe", "poema", "conto", "cuento", "carta", "correo",
         "e-mail", "parágrafo", "párrafo", "redação", "redacción", "ortografia", "ortografía", "gramática",
         "anúncio", "anuncio"],
        ["text", "report", "title", "copy", "write", "sentence", "sentences", "words", "style", "reader", "audience",
         "paragraphs", "pages", "chapter", "author", "quote", "review", "describe", "description", "texto", "frase",
         "frases", "palavras", "palabras", "mensagem", "mensaje", "escreva", "escribe"],
    ),
    "chat": (
        ["hi", "hello", "hey", "thanks", "thank", "recommend", "advice", "opinion", "favorite", "favourite", "ideas",
         "suggestions", "tips", "weekend", "vacation", "trip", "recipe", "movie", "movies", "book", "books", "music",
         "weather", "joke", "fun", "hobby", "gift", "gifts", "friend", "friends", "feel", "feeling", "life", "health",
         "travel", "restaurant", "dinner", "obrigado", "obrigada", "gracias", "receita",
         "receta", "dicas", "consejos", "filmes", "películas", "livros", "libros", "viagem", "viaje", "férias",
         "vacaciones", "saúde", "salud", "indica", "recomenda", "recomiéndame", "recomienda", "regalo"],
        ["why", "who", "when", "where", "best", "good", "think", "should", "history", "famous", "difference between",
         "quem", "quién", "quando", "cuándo", "onde", "dónde", "qual", "cuál", "por que", "por qué", "melhor",
         "mejor"],
    ),
}

# complexity vocabularies: whole words / phrases, counted once each
HARD = [
    "refactor", "refactoring", "architecture", "architect", "design a", "design an", "design the", "redesign",
    "optimize", "optimise", "optimization", "scalable", "scalability", "scale to", "concurrency", "concurrent",
    "distributed", "race condition", "race conditions", "deadlock", "deadlocks", "memory leak", "memory leaks",
    "thread-safe", "race detector", "data race", "data races", "vulnerability", "vulnerabilities", "security review",
    "security audit", "migrate", "migration",
    "migrating", "prove", "proof", "proofs", "rigorous", "rigorously", "derive", "derivation", "step by step",
    "step-by-step", "in depth", "in-depth", "in detail", "detailed", "thorough", "thoroughly", "comprehensive",
    "analyze", "analyse", "analysis", "trade-offs", "tradeoffs", "trade-off", "compare and contrast", "edge cases",
    "production", "production-ready", "end-to-end", "from scratch", "multithreaded", "multi-threaded",
    "asynchronous", "performance", "benchmark", "benchmarks", "integral", "eigenvalues", "eigenvectors", "induction",
    "converge", "convergence", "differential", "complexity analysis", "across multiple files", "entire codebase",
    "full implementation", "literature review", "whitepaper", "white paper", "strategy", "nuanced", "critique",
    "formal proof", "implement a compiler", "implement an interpreter", "write a compiler", "consensus",
    "concorrência", "concurrencia", "concurrente", "distribuído", "distribuido", "escalável", "escalable",
    "arquitetura", "arquitectura", "otimização", "optimización", "passo a passo", "paso a paso", "em detalhe",
    "en detalle", "detalhado", "detallado", "rigoroso", "riguroso", "análise", "análisis", "migração", "migración",
    "migrar", "desempenho", "rendimiento", "apagado ordenado", "sem perder", "sin perder",
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
    "por que", "por quê", "por qué", "corrija", "corrigir", "corregir", "depurar", "revise", "revisa", "explique",
    "otimize", "optimiza", "teste", "testes", "pruebas", "riscos", "riesgos", "compare", "compara", "sistema de",
]
LONG_FORM = ["cover letter", "blog post", "press release", "essay", "article", "white paper", "whitepaper", "proposal",
             "report", "abstract", "speech", "chapter", "literature review", "business plan"]
ADVANCED_MATH = [
    "probability", "probabilidade", "probabilidad", "integral", "derivada", "autovalores",
    "integral", "integrate", "eigenvalue", "eigenvalues", "eigenvector", "eigenvectors", "matrix", "matrices",
    "calculus", "confidence interval", "standard deviation", "combinatorics", "combinatorial", "how many ways",
    "expected value", "expected number", "converge", "converges", "convergence", "differential equation",
    "group of order", "groups of order", "of prime order", "subgroup", "subgroups", "abelian", "cyclic group",
    "homomorphism", "isomorphism", "vector space", "maximize", "maximise", "minimize", "minimise", "hypothesis test",
    "regression",
    "maximum area", "maximum volume", "maximum value", "minimum value", "minimum cost", "inscribed", "circumscribed",
    "área máxima", "volume máximo", "volumen máximo", "valor máximo", "valor mínimo", "inscrito", "inscrita",
    # counting problems: how many numbers or ways with a condition
    "how many different", "how many numbers", "how many integers", "digit numbers", "distinct digits",
    "different digits", "permutations", "cuántos números", "quantos números", "cifras distintas",
    "cifras diferentes", "algarismos distintos", "algarismos diferentes", "de cuántas maneras", "de cuantas maneras",
    "de quantas maneiras", "de cuántas formas", "de quantas formas", "permutaciones", "permutações",
]
SIMPLE = ["quick", "quickly", "simple", "short", "briefly", "brief", "one-liner", "one line", "in one sentence", "just",
          "tiny", "small", "basic", "easy", "what is", "what's", "who is", "who was", "when is", "when was",
          "when did", "define", "definition of", "how do i say", "rápido", "simples", "sencillo", "sencilla",
          "curto", "curta", "corto", "corta", "breve", "o que é", "qué es", "quem é", "quién es", "fácil"]
WORD_COUNT = re.compile(r"\b\d{3,5}[- ]words?\b")
# difficulty vocabularies (router.routing.difficulty): distinct phrases counted once each
CONSTRAINTS = [  # the marks of an instruction with many conditions to satisfy at once
    "exactly", "must", "at most", "at least", "no more than", "no fewer than", "fewer than", "without using",
    "never", "do not use", "don't use", "must not", "only use", "no line", "each line", "every line",
    "each sentence", "every sentence", "each paragraph", "every paragraph", "first letter", "first letters",
    "last line", "rhymes", "acrostic", "in the format", "begin with", "start with", "starts with", "end with",
    "ends with", "mentions", "exactly once", "no exclamation", "never uses", "under 100 words", "word limit",
    "exatamente", "exactamente", "no máximo", "no mínimo", "como máximo", "como mínimo", "sem usar", "sin usar",
    "nenhuma", "ninguna", "ninguno", "apenas no", "solo en", "terminando com", "terminando con", "cada um",
    "cada una", "cada uno", "sem repetir", "sin repetir", "condiciones", "condições", "restricciones", "restrições",
    "requisitos", "requirements", "constraints", "no más de", "não mais de", "the word", "the letter", "a palavra",
    "la palabra", "a letra", "la letra", "en la última", "na última", "in the last", "terminados en",
    # verse forms that count: syllables, a rhyme scheme, a metre
    "syllable", "syllables", "sílaba", "sílabas", "rhyme scheme", "esquema de rimas", "esquema de rima", "iambic",
    "pentameter", "alliteration", "aliteração", "aliteración", "endecasílabo", "endecasílabos", "octosílabo",
    "octosílabos", "decassílabo", "decassílabos", "redondilha", "rima consonante", "rima asonante", "rima toante",
]
EXPERT = [  # specialist vocabulary where small models answer confidently and wrongly
    "gdpr", "hipaa", "liability", "indemnity", "indemnify", "jurisdiction", "statute", "tort", "plaintiff",
    "regulator", "regulatory", "fiduciary", "legitimate interest", "case law", "precedent", "balancing test",
    "dosage", "dosing", "contraindicated", "contraindication", "pharmacokinetics", "drug interaction",
    "differential diagnosis", "pathophysiology", "prognosis", "etiology", "warfarin", "inr", "mechanism",
    "ketoacidosis", "hyperosmolar", "carnot", "enthalpy", "entropy", "thermodynamics", "gibbs", "carbocation",
    "stereochemistry", "sn1", "sn2", "kinetics", "equilibrium constant", "spectroscopy", "quantum field",
    "hamiltonian", "lagrangian", "valuation", "ebitda", "arbitrage", "hedging", "amortization", "venture debt",
    "priced round", "cap table", "dilution", "safe note", "tax treatment", "seismic", "finite element",
    "rescisão", "jurisprudência", "tributário", "verbas rescisórias", "fgts", "cetoacidosis", "cetoacidose",
    "hiperosmolar", "fármaco", "farmacocinética", "termodinâmica", "termodinámica", "derivada parcial",
    "clause", "cláusula", "justa causa", "convertible note", "valuation cap", "pre-money", "post-money",
    "torque", "angular momentum", "precession", "moment of inertia", "epidemiology", "pharmacology",
    # law: the terms of a case to reason out (not everyday words such as court, jury or contract)
    "plaintiff", "plaintiffs", "defendant", "defendants", "negligence", "negligent", "tortious", "hearsay",
    "admissible", "inadmissible", "estoppel", "easement", "grantor", "grantee", "testator", "mens rea", "actus reus",
    "strict liability", "adverse possession", "fee simple", "due process", "equal protection", "commerce clause",
    "felony", "misdemeanor", "indictment", "appellate", "injunction", "promissory", "rescission", "bailment",
    "burden of proof", "statute of limitations", "breach of contract", "unconstitutional", "inconstitucional", "réu",
    "negligência", "indenização", "usucapião", "demandante", "demandado", "negligencia", "indemnización",
    "jurisprudencia",
    # computer science theory, machine learning, formal logic
    "turing machine", "np-complete", "np-hard", "decidable", "undecidable", "regular language", "context-free",
    "automaton", "automata", "asymptotic", "amortized", "vc dimension", "gradient descent", "backpropagation",
    "overfitting", "regularization", "support vector", "maximum likelihood", "convolutional", "cache coherence",
    "pipelining", "virtual memory", "symbolization", "antecedent", "entailment", "modus ponens", "modus tollens",
    "autômato", "autómata", "sobreajuste", "descida do gradiente", "descenso de gradiente",
    # physics and medicine
    "centripetal", "electric field", "magnetic field", "capacitor", "inductance", "photoelectric", "relativistic",
    "doppler", "campo elétrico", "campo eléctrico", "campo magnético", "myocardial infarction", "pathogenesis",
    "pharmacodynamics", "most likely diagnosis", "farmacodinâmica", "farmacodinámica",
]
ALGORITHMIC = [  # what makes a piece of code non-trivial to write or to fix
    "algorithm", "algorithms", "time complexity", "space complexity", "o(n)", "o(1)", "o(log", "o(n log n)",
    "big-o", "recursion", "recursive", "dynamic programming", "memoization", "binary tree", "binary search tree",
    "graph", "linked list", "heap", "priority queue", "trie", "dijkstra", "shortest path", "topological",
    "backtracking", "sliding window", "subsequence", "substring", "palindrome", "palindromic", "permutations",
    "kth", "sorted arrays", "sorted lists", "thread-safe", "mutex",
    "goroutines", "threads", "leak", "leaks", "grows", "killed", "rate limiter", "eviction", "lru", "parser",
    "recursive descent",
    "ast", "tokenizer", "state machine", "unit tests", "edge cases",
    "producer-consumer", "bounded queue", "graceful shutdown", "window function", "month-over-month",
    "authentication", "pagination", "slow", "hangs", "algoritmo", "complexidade",
    "complejidad", "recursão", "recursión", "productor-consumidor", "concorrência", "concurrencia", "paginação",
    "autenticação", "subcadena", "palindrómica", "vetor circular", "optimizo", "otimizar", "optimizar", "lenta",
    "recursiva", "recursivo", "memoização", "memoización", "stack overflow", "estoura a pilha", "desborda la pila",
    "worker pool", "pool de workers", "cancellation", "cancelamento", "cancelación",
    # races and double effects; runs of rows (gaps and islands) in SQL
    "double charge", "cobrado duas vezes", "cobrado dos veces", "condição de corrida", "condición de carrera",
    "consecutive", "streak", "streaks", "gaps and islands", "running total", "racha", "rachas", "consecutivos",
    "consecutivas",
]
# the learned layer's structural vocabularies (router.routing.difficulty FEATURES): distinct words counted once each
FRACTIONS = [  # ratio words: a word problem that scales, splits or compounds
    "half", "halves", "third", "thirds", "quarter", "quarters", "fifth", "fifths", "twice", "double", "triple",
    "thrice", "ratio", "fraction", "fractions", "percent", "percentage", "proportion", "metade", "terço", "terços",
    "dobro", "triplo", "mitad", "tercio", "tercios", "doble", "proporção", "proporción", "porcentaje",
    "porcentagem",
]
RELATIONS = [  # quantities defined through one another: each relation is one more step to chain (word problems)
    "than", "times as", "times more", "as many", "as much", "remaining", "the rest", "the remainder", "left over",
    "mais que", "mais do que", "menos que", "menos do que", "vezes mais", "a mais", "a menos", "restante",
    "restantes", "o resto", "más que", "menos que", "veces más", "de más", "de menos", "el resto",
]
# a story told in stages: each stage changes the quantities before the question (word problems; whole words, read
# for math and reasoning only)
STEP_WORDS = frozenset(w.encode() for w in (
    "first", "second", "then", "next", "later", "finally", "afterwards", "primeiro", "depois", "então", "finalmente",
    "primero", "después", "luego", "entonces"))
NEGATIONS = [  # a question that asks for the exception, or a premise to negate
    "not", "except", "false", "incorrect", "least", "never", "cannot", "não", "exceto", "excepto", "falso", "falsa",
    "incorreta", "incorrecta", "nunca",
]
STATEMENTS = re.compile(r"\b(?:statement|scenario|premise|claim|afirmação|afirmación|premissa|premisa)\s*(?:1|i|a)\b")
STATEMENT_WORDS = frozenset(
    w.encode() for w in ("statement", "scenario", "premise", "claim", "afirmação", "afirmación", "premissa", "premisa"))
