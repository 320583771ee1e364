"""Builds the redaction corpus: synthetic but realistic texts with labelled secrets and PII, and hard negatives.

    python tests/data/redaction_corpus/generate.py      # rewrites positives.jsonl and negatives.jsonl

Every value is made up here (valid checksums where the kind has one: Luhn, IBAN mod-97, CPF/CNPJ, SSN
rules) and embedded in text of six genres: code, logs, e-mails, config files, chat and Portuguese text.
Each positive line is {"genre", "text", "labels": [{"kind", "value"}]}; each negative line is
{"genre", "what", "text"} and must yield no finding at all. Deterministic (seeded), so the files only
change when this script does.

Decisions the corpus encodes (docs/configuration.md says the same):
- Well-known published test card numbers (4242 4242 4242 4242, 4111 1111 1111 1111, …) are negatives:
  they are public, and every payment integration's code and logs are full of them.
- Cloud providers' documented example keys (AKIAIOSFODNN7EXAMPLE) are positives: they have the real
  format, and a scanner that skipped them would skip a real key that happened to look alike.
- Loopback/unspecified IPs (127.0.0.1, 0.0.0.0, ::1) and version strings are negatives; private-range
  IPs (10.x, 192.168.x) are positives: they map an internal network.
"""

# ruff: noqa: E501  (template strings read better whole)
from __future__ import annotations

import base64
import json
import random
import string
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
R = random.Random(20261201)
B62 = string.ascii_letters + string.digits
B64URL = B62 + "-_"
HEX = "0123456789abcdef"

FIRST = ["ana", "joao", "maria", "pedro", "lucas", "julia", "carlos", "fernanda", "john", "emily", "michael",
         "sarah", "david", "laura", "wei", "priya", "ahmed", "sofia", "mateus", "beatriz", "rafael", "camila"]
LAST = ["silva", "santos", "oliveira", "souza", "pereira", "costa", "smith", "johnson", "brown", "garcia",
        "müller", "nguyen", "kumar", "rossi", "ferreira", "almeida", "lima", "gomes", "martins", "rocha"]
DOMAINS = ["gmail.com", "outlook.com", "empresa.com.br", "acme.io", "example.org", "uol.com.br", "corp.internal",
           "startup.dev", "hotmail.com", "yahoo.com.br", "globo.com", "mail.co.uk", "web.de", "protonmail.com"]


def rs(alphabet: str, n: int) -> str:
    return "".join(R.choice(alphabet) for _ in range(n))


# ---------------------------------------------------------------- value makers (checksums included)


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(R.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def card() -> str:
    prefix, length = R.choice([("4", 16), ("4", 16), ("51", 16), ("53", 16), ("55", 16), ("2221", 16),
                               ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("3528", 16), ("36", 14),
                               ("5067", 16), ("636368", 16), ("4389", 16), ("606282", 16)])
    n = luhn_complete(prefix, length)
    style = R.random()
    if length == 15 and style < 0.5:
        return f"{n[:4]} {n[4:10]} {n[10:]}"
    if length == 16 and style < 0.45:
        return " ".join(n[i:i + 4] for i in range(0, 16, 4))
    if length == 16 and style < 0.65:
        return "-".join(n[i:i + 4] for i in range(0, 16, 4))
    return n


IBAN_SPECS = {"DE": "8n10n", "GB": "4a14n", "FR": "10n11c2n", "ES": "20n", "IT": "1a10n12c", "NL": "4a10n",
              "PT": "21n", "BR": "8n5n10n1a1c", "BE": "12n", "CH": "5n12c", "AT": "16n", "PL": "24n", "IE": "4a14n"}


def _spec_chars(spec: str) -> str:
    out, num = [], ""
    for ch in spec:
        if ch.isdigit():
            num += ch
            continue
        alphabet = {"n": string.digits, "a": string.ascii_uppercase, "c": string.ascii_uppercase + string.digits}[ch]
        out.append(rs(alphabet, int(num)))
        num = ""
    return "".join(out)


def iban() -> str:
    country = R.choice(list(IBAN_SPECS))
    bban = _spec_chars(IBAN_SPECS[country])
    moved = bban + country + "00"
    num = int("".join(str(int(c, 36)) for c in moved))
    check = 98 - num % 97
    value = f"{country}{check:02d}{bban}"
    if R.random() < 0.6:
        return " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    return value


def cpf(formatted: bool | None = None) -> str:
    while True:
        d = [R.randint(0, 9) for _ in range(9)]
        if len(set(d)) > 1:
            break
    for n in (10, 11):
        s = sum(v * w for v, w in zip(d, range(n, 1, -1), strict=False))
        d.append(s * 10 % 11 % 10)
    v = "".join(map(str, d))
    fmt = R.random() < 0.7 if formatted is None else formatted
    return f"{v[:3]}.{v[3:6]}.{v[6:9]}-{v[9:]}" if fmt else v


def cnpj(formatted: bool | None = None, alnum: bool = False) -> str:
    alphabet = string.digits + (string.ascii_uppercase if alnum else "")
    base = [rs(alphabet, 1) for _ in range(8)] + list("0001" if R.random() < 0.7 else rs(string.digits, 4))
    vals = [ord(c) - 48 for c in base]
    for w in ((5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2), (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)):
        r = sum(v * x for v, x in zip(vals, w, strict=True)) % 11
        vals.append(0 if r < 2 else 11 - r)
    v = "".join(base) + "".join(str(x) for x in vals[12:])
    fmt = R.random() < 0.75 if formatted is None else formatted
    return f"{v[:2]}.{v[2:5]}.{v[5:8]}/{v[8:12]}-{v[12:]}" if fmt else v


def ssn() -> str:
    while True:
        area = R.randint(1, 899)
        if area != 666:
            break
    return f"{area:03d}-{R.randint(1, 99):02d}-{R.randint(1, 9999):04d}"


def phone() -> str:
    kind = R.choice(["br_mobile", "br_mobile_intl", "br_land", "us", "us_intl", "uk", "de", "fr", "e164", "pt"])
    if kind == "br_mobile":
        return f"({R.randint(11, 99)}) 9{R.randint(1000, 9999)}-{R.randint(1000, 9999)}"
    if kind == "br_mobile_intl":
        return f"+55 {R.randint(11, 99)} 9{R.randint(1000, 9999)}-{R.randint(1000, 9999)}"
    if kind == "br_land":
        return f"({R.randint(11, 99)}) {R.randint(2000, 5999)}-{R.randint(1000, 9999)}"
    if kind == "us":
        return R.choice(["({a}) {b}-{c}", "{a}-{b}-{c}", "{a}.{b}.{c}"]).format(
            a=R.randint(201, 989), b=R.randint(200, 999), c=f"{R.randint(0, 9999):04d}")
    if kind == "us_intl":
        return f"+1 {R.randint(201, 989)} {R.randint(200, 999)} {R.randint(0, 9999):04d}"
    if kind == "uk":
        return R.choice([f"+44 20 {R.randint(7000, 8999)} {R.randint(1000, 9999)}",
                         f"+44 7{R.randint(100, 999)} {R.randint(100000, 999999)}"])
    if kind == "de":
        return f"+49 {R.randint(30, 89)} {R.randint(1000000, 9999999)}"
    if kind == "fr":
        return f"+33 {R.randint(1, 7)} {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)}"
    if kind == "pt":
        return f"+351 9{R.randint(10, 69)} {R.randint(100, 999)} {R.randint(100, 999)}"
    return f"+{R.choice(['55', '1', '44', '49', '34', '39', '52'])}{R.randint(1000000000, 9999999999)}"


def email() -> str:
    first, last = R.choice(FIRST), R.choice(LAST).replace("ü", "u")
    local = R.choice([f"{first}.{last}", f"{first}{R.randint(1, 99)}", f"{first[0]}{last}", f"{first}_{last}",
                      f"{first}+{R.choice(['news', 'work', 'test'])}", f"{last}.{first}"])
    return f"{local}@{R.choice(DOMAINS)}"


def ipv4() -> str:
    kind = R.random()
    if kind < 0.3:
        return f"10.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"
    if kind < 0.5:
        return f"192.168.{R.randint(0, 255)}.{R.randint(1, 254)}"
    if kind < 0.6:
        return f"172.{R.randint(16, 31)}.{R.randint(0, 255)}.{R.randint(1, 254)}"
    return f"{R.randint(11, 223)}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"


def ipv6() -> str:
    groups = [f"{R.randint(0, 65535):x}" for _ in range(8)]
    groups[0] = R.choice(["2001", "2804", "fe80", "2a02", "2607"])
    if R.random() < 0.5:
        return ":".join(groups)
    return ":".join(groups[:3]) + "::" + ":".join(groups[6:])


def b64(n: int) -> str:
    return base64.b64encode(bytes(R.getrandbits(8) for _ in range(n))).decode()


def jwt() -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    header = part({"alg": R.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"})
    payload = part({"sub": str(R.randint(1000, 99999)), "name": R.choice(FIRST), "iat": R.randint(1.6e9, 1.8e9),
                    "scope": R.choice(["read", "admin", "user:write"])})
    return f"{header}.{payload}.{rs(B64URL, R.choice([43, 86, 64]))}"


def private_key() -> str:
    label = R.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY",
                      "ENCRYPTED PRIVATE KEY"])
    body = b64(R.choice([240, 600, 900]))
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----"


def strong_password() -> str:
    return rs(B62, R.randint(4, 6)) + R.choice("!@#$%&*-_.") + rs(B62, R.randint(4, 8)) + str(R.randint(0, 99))


SECRET_MAKERS = {
    "OPENAI_KEY": lambda: R.choice([f"sk-proj-{rs(B64URL, 64)}T3BlbkFJ{rs(B64URL, 64)}", f"sk-{rs(B62, 48)}",
                                    f"sk-svcacct-{rs(B64URL, 60)}", f"sk-{rs(B62, 20)}T3BlbkFJ{rs(B62, 20)}"]),
    "ANTHROPIC_KEY": lambda: f"sk-ant-api03-{rs(B64URL, 93)}AA",
    "GOOGLE_KEY": lambda: R.choice([f"AIza{rs(B64URL, 35)}", f"ya29.{rs(B64URL, 120)}", f"GOCSPX-{rs(B64URL, 28)}"]),
    "AWS_ACCESS_KEY": lambda: R.choice(["AKIA", "ASIA"]) + rs(string.ascii_uppercase + "234567", 16),
    "AWS_SECRET_KEY": lambda: rs(B62 + "/+", 40),
    "AZURE_KEY": lambda: R.choice([f"AccountKey={b64(64)}", rs(HEX, 32), f"{rs(B62, 3)}8Q~{rs(B62 + '_~.-', 34)}"]),
    "GITHUB_TOKEN": lambda: R.choice([f"ghp_{rs(B62, 36)}", f"gho_{rs(B62, 36)}", f"ghs_{rs(B62, 36)}",
                                      f"github_pat_{rs(B62, 22)}_{rs(B62, 59)}"]),
    "GITLAB_TOKEN": lambda: R.choice([f"glpat-{rs(B64URL, 20)}", f"glrt-{rs(B64URL, 20)}", f"gldt-{rs(B64URL, 20)}"]),
    "SLACK_TOKEN": lambda: R.choice([f"xoxb-{R.randint(10**11, 10**12)}-{R.randint(10**12, 10**13)}-{rs(B62, 24)}",
                                     f"xoxp-{R.randint(10**11, 10**12)}-{R.randint(10**11, 10**12)}-"
                                     f"{R.randint(10**11, 10**12)}-{rs(HEX, 32)}",
                                     f"https://hooks.slack.com/services/T{rs(string.ascii_uppercase + string.digits, 8)}"
                                     f"/B{rs(string.ascii_uppercase + string.digits, 10)}/{rs(B62, 24)}"]),
    "STRIPE_KEY": lambda: R.choice([f"sk_live_{rs(B62, 24)}", f"rk_live_{rs(B62, 24)}", f"sk_test_{rs(B62, 24)}",
                                    f"whsec_{rs(B62, 32)}"]),
    "TWILIO_KEY": lambda: R.choice(["AC", "SK"]) + rs(HEX, 32),
    "SENDGRID_KEY": lambda: f"SG.{rs(B64URL, 22)}.{rs(B64URL, 43)}",
    "JWT": jwt,
    "PRIVATE_KEY": private_key,
}
STRUCTURED = set(SECRET_MAKERS)


# ---------------------------------------------------------------- templates per genre

def _lbl(kind: str, value: str) -> dict[str, str]:
    return {"kind": kind, "value": value}


def secret_in_context(kind: str) -> tuple[str, str, list[dict[str, str]]]:
    v = SECRET_MAKERS[kind]()
    label_value = v.removeprefix("AccountKey=") if kind == "AZURE_KEY" else v
    env = {"OPENAI_KEY": "OPENAI_API_KEY", "ANTHROPIC_KEY": "ANTHROPIC_API_KEY", "GOOGLE_KEY": "GOOGLE_API_KEY",
           "AWS_ACCESS_KEY": "AWS_ACCESS_KEY_ID", "AWS_SECRET_KEY": "AWS_SECRET_ACCESS_KEY",
           "AZURE_KEY": "AZURE_OPENAI_API_KEY", "GITHUB_TOKEN": "GITHUB_TOKEN", "GITLAB_TOKEN": "GITLAB_TOKEN",
           "SLACK_TOKEN": "SLACK_BOT_TOKEN", "STRIPE_KEY": "STRIPE_SECRET_KEY", "TWILIO_KEY": "TWILIO_ACCOUNT_SID",
           "SENDGRID_KEY": "SENDGRID_API_KEY", "JWT": "ACCESS_TOKEN", "PRIVATE_KEY": "TLS_KEY"}[kind]
    if kind == "AZURE_KEY" and v.startswith("AccountKey="):
        text = (f"conn = \"DefaultEndpointsProtocol=https;AccountName=stor{rs(HEX, 6)};{v};"
                "EndpointSuffix=core.windows.net\"")
        return "config", text, [_lbl(kind, label_value)]
    if kind == "AZURE_KEY" and len(v) == 32:
        text = R.choice([f"{env}={v}", f"curl -H 'api-key: {v}' https://myres.openai.azure.com/openai/deployments",
                         f"azure:\n  endpoint: https://contoso.openai.azure.com\n  api_key: \"{v}\""])
        return "config", text, [_lbl(kind, v)]
    if kind == "AWS_SECRET_KEY":
        text = R.choice([f"[default]\naws_access_key_id = AKIA{rs(string.ascii_uppercase + '234567', 16)}\n"
                         f"aws_secret_access_key = {v}\nregion = us-east-1",
                         f"export AWS_SECRET_ACCESS_KEY=\"{v}\"",
                         f"s3 = boto3.client('s3', aws_secret_access_key='{v}')"])
        labels = [_lbl(kind, v)]
        if "aws_access_key_id" in text:
            labels.append(_lbl("AWS_ACCESS_KEY", text.split("aws_access_key_id = ")[1].split("\n")[0]))
        return "config", text, labels
    if kind == "PRIVATE_KEY":
        text = R.choice([f"Here is the key for the staging box, please keep it safe:\n{v}\nthanks",
                         "tls:\n  key: |\n" + "\n".join("    " + ln for ln in v.split("\n")),
                         f"$ cat ~/.ssh/id_rsa\n{v}\n$ "])
        return "chat", text, [_lbl(kind, v)]
    templates = [
        ("config", "{env}={v}"),
        ("config", "export {env}=\"{v}\""),
        ("code", "client = Client(api_key=\"{v}\")"),
        ("code", "const token = '{v}';\nfetch(url, {{ headers: {{ Authorization: `Bearer ${{token}}` }} }})"),
        ("log", "2025-03-04T12:01:55Z WARN auth failed for credential {v} (expired)"),
        ("chat", "hey, can you check why this doesn't work? I'm using {v} and get a 401"),
        ("email", "Hi team,\n\nThe new credential for the integration is {v}\nPlease rotate the old one.\n\nBest,\nOps"),
        ("pt", "Oi! Segue a chave de acesso da API: {v} — não compartilhe com ninguém, por favor."),
        ("config", "  \"{envl}\": \"{v}\","),
        ("code", "# TODO remove before commit\nKEY = \"{v}\""),
    ]
    genre, t = R.choice(templates)
    return genre, t.format(env=env, envl=env.lower(), v=v), [_lbl(kind, label_value)]


def generic_secret() -> tuple[str, str, list[dict[str, str]]]:
    pw = strong_password()
    db = R.choice(["postgres", "postgresql", "mysql", "mongodb+srv", "redis", "amqp", "mssql"])
    host = R.choice(["db.internal", "10.0.3.12", "prod-db.acme.io", "cluster0.mongodb.net", "localhost"])
    user = R.choice(["admin", "app", "root", "svc_orders", "deploy"])
    token = rs(B62, R.randint(24, 40))
    options = [
        ("config", f"DATABASE_URL={db}://{user}:{pw}@{host}:5432/app", [_lbl("PASSWORD", pw)]),
        ("code", f"engine = create_engine(\"{db}://{user}:{pw}@{host}/orders\")", [_lbl("PASSWORD", pw)]),
        ("log", f"connecting to {db}://{user}:{pw}@{host}:6379/0 ... ok", [_lbl("PASSWORD", pw)]),
        ("config", f"db:\n  host: {host}\n  user: {user}\n  password: \"{pw}\"", [_lbl("PASSWORD", pw)]),
        ("config", f"DB_PASSWORD={pw}\nDB_USER={user}", [_lbl("PASSWORD", pw)]),
        ("config", f"Server=tcp:{host},1433;Database=app;User Id={user};Password={pw};", [_lbl("PASSWORD", pw)]),
        ("code", f"conn = psycopg2.connect(host='{host}', user='{user}', password='{pw}')", [_lbl("PASSWORD", pw)]),
        ("chat", f"the wifi password is {pw} btw", []),
        ("pt", f"A senha do banco é senha={pw}, troca depois.", [_lbl("PASSWORD", pw)]),
        ("config", f"client_secret: {token}", [_lbl("SECRET", token)]),
        ("config", f"SECRET_KEY = '{token}'", [_lbl("SECRET", token)]),
        ("code", f"headers = {{\"X-Api-Key\": \"{token}\"}}", [_lbl("SECRET", token)]),
        ("log", f"POST /hook?token={token} 200", [_lbl("SECRET", token)]),
        ("log", f"curl -H \"Authorization: Bearer {token}\" https://api.internal/v2/users", [_lbl("TOKEN", token)]),
        ("config", f"auth_token = \"{token}\"", [_lbl("SECRET", token)]),
        ("code", f"requests.get(url, auth=HTTPBasicAuth('{user}', '{pw}'))", []),
        ("log", "GET /admin Authorization: Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode(),
         [_lbl("PASSWORD", base64.b64encode(f"{user}:{pw}".encode()).decode())]),
    ]
    genre, text, labels = R.choice(options)
    if labels and host[0].isdigit() and host in text:
        labels = [*labels, _lbl("IP", host)]
    if not labels:  # a bare password in prose is not detectable by format: keep it out of the positives
        return generic_secret()
    return genre, text, labels


def pii_sample() -> tuple[str, str, list[dict[str, str]]]:
    kind = R.choice(["EMAIL", "EMAIL", "PHONE", "PHONE", "CARD", "IBAN", "SSN", "CPF", "CPF", "CNPJ", "IP", "IP",
                     "MIX", "MIX"])
    name = f"{R.choice(FIRST).title()} {R.choice(LAST).title()}"
    if kind == "EMAIL":
        v = email()
        t = R.choice([
            ("email", f"From: {name} <{v}>\nTo: suporte@empresa.com.br\nSubject: pedido atrasado", ["suporte@empresa.com.br"]),
            ("chat", f"you can reach me at {v} anytime", []),
            ("log", f"2025-01-09 14:22:10 INFO user login ok email={v} ip=-", []),
            ("code", f"assert send_invite(\"{v}\") is True", []),
            ("config", f"alerts:\n  notify: [{v}]", []),
            ("pt", f"Meu e-mail é {v}, pode mandar a nota fiscal lá.", []),
        ])
        genre, text, extra = t
        return genre, text, [_lbl("EMAIL", v)] + [_lbl("EMAIL", e) for e in extra]
    if kind == "PHONE":
        v = phone()
        genre, text = R.choice([
            ("chat", f"call me on {v} after 6pm"),
            ("email", f"Best regards,\n{name}\nSales Manager\nPhone: {v}"),
            ("pt", f"Meu celular é {v}, pode chamar no WhatsApp."),
            ("log", f"sms sent to={v} status=delivered"),
            ("config", f"support_phone: \"{v}\""),
            ("pt", f"Telefone para contato: {v} (horário comercial)"),
        ])
        return genre, text, [_lbl("PHONE", v)]
    if kind == "CARD":
        v = card()
        genre, text = R.choice([
            ("chat", f"my card number is {v}, exp 09/27, why was it declined?"),
            ("log", f"payment failed pan={v} reason=insufficient_funds"),
            ("pt", f"Cartão: {v} validade 11/28. Pode cobrar a assinatura?"),
            ("email", f"Please charge the remaining balance to card {v}.\nThanks, {name}"),
        ])
        return genre, text, [_lbl("CARD", v)]
    if kind == "IBAN":
        v = iban()
        genre, text = R.choice([
            ("email", f"Bank details for the invoice:\nAccount holder: {name}\nIBAN: {v}\nBIC: DEUTDEFF"),
            ("chat", f"send it to {v} please"),
            ("pt", f"Para transferência internacional use o IBAN {v}."),
        ])
        return genre, text, [_lbl("IBAN", v)]
    if kind == "SSN":
        v = ssn()
        genre, text = R.choice([
            ("chat", f"my SSN is {v}, is it safe to put it in the form?"),
            ("email", f"Employee: {name}\nSSN: {v}\nStart date: 2025-02-01"),
            ("log", f"kyc check subject_ssn={v} result=pass"),
        ])
        return genre, text, [_lbl("SSN", v)]
    if kind == "CPF":
        v = cpf()
        genre, text = R.choice([
            ("pt", f"Meu CPF é {v}, preciso emitir a segunda via do boleto."),
            ("pt", f"Nome: {name}\nCPF: {v}\nEndereço: Rua das Flores, 123"),
            ("log", f"cadastro criado cpf={v} status=ok"),
            ("chat", f"the customer's CPF is {v}"),
        ])
        return genre, text, [_lbl("CPF", v)]
    if kind == "CNPJ":
        v = cnpj(alnum=R.random() < 0.15)
        genre, text = R.choice([
            ("pt", f"Razão social: Acme Comércio Ltda, CNPJ {v}"),
            ("pt", f"A nota foi emitida para o CNPJ: {v}."),
            ("log", f"nfe emitida cnpj_emitente={v} serie=1"),
        ])
        return genre, text, [_lbl("CNPJ", v)]
    if kind == "IP":
        v = ipv4() if R.random() < 0.8 else ipv6()
        genre, text = R.choice([
            ("log", f"{v} - - [10/Oct/2025:13:55:36 +0000] \"GET /api/v1/orders HTTP/1.1\" 200 2326"),
            ("log", f"blocked login attempt from {v} (5 failures)"),
            ("config", f"allowed_hosts:\n  - {v}"),
            ("chat", f"my server is at {v}, can't ssh into it"),
        ])
        return genre, text, [_lbl("IP", v)]
    # a mix: an e-mail with several PII kinds
    e, p, c = email(), phone(), cpf(formatted=True)
    text = (f"Olá, sou {name}. Segue meus dados para o cadastro:\nE-mail: {e}\nTelefone: {p}\nCPF: {c}\n"
            "Obrigado!")
    return "pt", text, [_lbl("EMAIL", e), _lbl("PHONE", p), _lbl("CPF", c)]


# ---------------------------------------------------------------- hard negatives

TEST_CARDS = ["4242 4242 4242 4242", "4111 1111 1111 1111", "5555 5555 5555 4444", "4000 0566 5566 5556",
              "378282246310005", "6011111111111117", "3056930009020004", "5105105105105100", "4012888888881881",
              "2223003122003222", "4000000000000002"]


def negative() -> tuple[str, str, str]:
    what = R.choice(["uuid", "sha", "hash", "base64img", "version", "timestamp", "order", "testcard", "code",
                     "placeholder", "misc", "prose_pt", "numbers", "k8s"])
    if what == "uuid":
        u = uuid.UUID(int=R.getrandbits(128), version=4)
        return "log", what, R.choice([f"request_id={u} status=200 took=12ms", f"GET /api/v1/orders/{u} 404",
                                      f"trace {u} span {rs(HEX, 16)}"])
    if what == "sha":
        sha = rs(HEX, 40)
        return "log", what, R.choice([f"commit {sha}\nAuthor: dev\n\n    fix: retry on 503", f"git checkout {sha[:7]}",
                                      f"Merge {sha[:12]} into main ({sha[12:20]})"])
    if what == "hash":
        return "code", what, R.choice([f"sha256:{rs(HEX, 64)}", f"md5sum: {rs(HEX, 32)}  backup.tar.gz",
                                       f"image: nginx@sha256:{rs(HEX, 64)}",
                                       f"\"integrity\": \"sha512-{b64(64)}\"",
                                       f"etag: W/\"{rs(HEX, 32)}\"", f"sha1 {rs(HEX, 40)}"])
    if what == "base64img":
        return "code", what, f"<img src=\"data:image/png;base64,{b64(R.choice([300, 900]))}\" alt=\"logo\">"
    if what == "version":
        return "code", what, R.choice([f"requires python>={R.randint(3, 3)}.{R.randint(8, 13)}",
                                       f"version: {R.randint(0, 9)}.{R.randint(0, 30)}.{R.randint(0, 99)}",
                                       f"Microsoft .NET Framework 4.0.30319.{R.randint(10000, 42000)}",
                                       f"chrome/{R.randint(100, 140)}.0.{R.randint(1000, 7000)}.{R.randint(10, 200)}",
                                       f"v{R.randint(1, 5)}.{R.randint(0, 20)}.{R.randint(0, 9)}-rc.{R.randint(1, 5)}",
                                       f"build 1.{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 200)}",
                                       "numpy==1.26.4 pandas==2.2.1 torch==2.3.0+cu121"])
    if what == "timestamp":
        return "log", what, R.choice([f"2025-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}T{R.randint(0, 23):02d}:"
                                      f"{R.randint(0, 59):02d}:{R.randint(0, 59):02d}.{R.randint(0, 999):03d}Z",
                                      f"ts={R.randint(1_600_000_000, 1_800_000_000)}",
                                      f"ts_ms={R.randint(1_600_000_000_000, 1_800_000_000_000)}",
                                      f"elapsed 00:{R.randint(10, 59)}:{R.randint(10, 59)}",
                                      f"{R.randint(1, 28):02d}/{R.randint(1, 12):02d}/2025 {R.randint(0, 23):02d}:"
                                      f"{R.randint(0, 59):02d}"])
    if what == "order":
        return "chat", what, R.choice([f"order #{R.randint(10**7, 10**10)} has not shipped",
                                       f"Pedido nº {R.randint(10**8, 10**11)} foi entregue",
                                       f"ORD-2025-{R.randint(100000, 999999)}",
                                       f"invoice INV-{R.randint(10000, 99999)}-{R.randint(10, 99)}",
                                       f"tracking BR{R.randint(10**8, 10**9)}BR",
                                       f"protocolo {R.randint(2025000000, 2025999999)}{R.randint(10, 99)}"])
    if what == "testcard":
        c = R.choice(TEST_CARDS)
        return "code", what, R.choice([f"// use the Stripe test card {c} with any CVC",
                                       f"cy.get('#card').type('{c}')", f"Test with {c}, exp 12/34, cvc 123"])
    if what == "code":
        return "code", what, R.choice([
            "def login(username: str, password: str) -> Token:\n    return auth.verify(username, password)",
            "token = get_token()\nheaders = {'Authorization': f'Bearer {token}'}",
            "password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt())",
            "if (!apiKey) throw new Error('API key is required');",
            "secret: Optional[str] = None\ntoken_url: str = 'https://oauth2.googleapis.com/token'",
            "for i in range(1000000):\n    total += i * 3.14159",
            "color: #ff5733; margin: 0 auto; width: calc(100% - 24px);",
            "std::vector<int> v{1, 2, 3}; std::map<std::string, int> m;",
            "SELECT id, email FROM users WHERE created_at > '2025-01-01' LIMIT 100;",
            "mac address 00:1A:2B:3C:4D:5E on eth0",
            "api_key = os.environ[\"OPENAI_API_KEY\"]",
            "password = getpass.getpass('Password: ')",
        ])
    if what == "placeholder":
        return "config", what, R.choice(["OPENAI_API_KEY=<your-key-here>", "password: ${DB_PASSWORD}",
                                         "api_key: \"YOUR_API_KEY\"", "DATABASE_URL=postgres://user:password@localhost/db",
                                         "token = \"xxxxxxxxxxxxxxxx\"", "SECRET_KEY=changeme",
                                         "aws_secret_access_key = <redacted>", "password: \"********\"",
                                         "export GITHUB_TOKEN=$(gh auth token)", "client_secret: {{ vault.secret }}"])
    if what == "prose_pt":
        return "pt", what, R.choice([
            "A reunião ficou para terça às 14h30, na sala 3. Levem o relatório do 3º trimestre.",
            f"O CEP da loja é {R.randint(10000, 99999)}-{R.randint(100, 999)}, perto do metrô.",
            "O produto custa R$ 1.299,90 em até 10x sem juros.",
            f"Coordenadas: -23.{R.randint(1000, 9999)}, -46.{R.randint(1000, 9999)}",
        ])
    if what == "numbers":
        return "chat", what, R.choice([f"ISBN 978-{R.randint(0, 9)}-{R.randint(10, 99)}-{R.randint(100000, 999999)}-{R.randint(0, 9)}",
                                       f"the result is {R.randint(10**6, 10**9):,} rows in {R.random() * 100:.2f}s",
                                       f"listening on 0.0.0.0:{R.randint(1024, 65000)} and 127.0.0.1:8082",
                                       f"arn:aws:iam::{R.randint(10**11, 10**12 - 1)}:role/deploy",
                                       f"port {R.randint(1000, 65000)}, pid {R.randint(100, 99999)}, mem {R.randint(1, 64)}GB",
                                       f"lat,lon = 37.{R.randint(1000, 9999)}, -122.{R.randint(1000, 9999)}",
                                       f"matrix [[{R.randint(1, 9)}, 0, 0], [0, {R.randint(1, 9)}, 0]]",
                                       f"ticket JIRA-{R.randint(100, 9999)} blocked by JIRA-{R.randint(100, 9999)}"])
    if what == "k8s":
        return "config", what, R.choice([f"pod/api-{rs(HEX, 10)}-{rs(string.ascii_lowercase + string.digits, 5)} Running",
                                         f"image: ghcr.io/acme/api:{R.randint(1, 9)}.{R.randint(0, 20)}.{R.randint(0, 9)}",
                                         "resources:\n  limits: {cpu: 500m, memory: 512Mi}",
                                         f"nodeSelector: {{zone: us-east-1{R.choice('abc')}}}"])
    return "chat", what, R.choice(["Can you explain how the retry stage promotes a request?",
                                   "Quanto é 15% de 2.400? E de 3.750?", "The meeting is at 10:30 in room 4.",
                                   "Use git rebase -i HEAD~3 to squash the last three commits."])


def main() -> None:
    positives = []
    for kind in sorted(SECRET_MAKERS):
        for _ in range(30):
            genre, text, labels = secret_in_context(kind)
            positives.append({"genre": genre, "text": text, "labels": labels})
    for _ in range(120):
        genre, text, labels = generic_secret()
        positives.append({"genre": genre, "text": text, "labels": labels})
    for _ in range(420):
        genre, text, labels = pii_sample()
        positives.append({"genre": genre, "text": text, "labels": labels})
    negatives = [dict(zip(("genre", "what", "text"), negative(), strict=True)) for _ in range(600)]
    for name, rows in (("positives.jsonl", positives), ("negatives.jsonl", negatives)):
        with open(HERE / name, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(positives)} positives, {len(negatives)} negatives in {HERE}")


if __name__ == "__main__":
    main()
