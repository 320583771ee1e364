"""Check digits and plausibility rules, run only on the candidates the scanner found.

Luhn (payment cards), ISO 13616 mod-97 (IBAN, with each country's length), the two check digits of a
Brazilian CPF and CNPJ (including the alphanumeric CNPJ introduced in 2026: letters count as their
ASCII code minus 48), the SSA's rules for a US SSN, and Shannon entropy for generic secrets (with
`entropy_at_least`, the threshold test the detectors ask, settled from the count of distinct characters
when that is enough: a fifth of the full sum's cost on a long key).
"""

from __future__ import annotations

import math
from collections import Counter

IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

# Published test card numbers (Stripe, Adyen, Braintree, PayPal, card-network samples): public, not PII.
TEST_CARDS = frozenset({
    "4242424242424242", "4000056655665556", "4111111111111111", "4012888888881881", "4222222222222",
    "4000000000000002", "4000000000009995", "4000000000000077", "4000000000000093", "4000002500003155",
    "4000000000003220", "4000000000000341", "4000000000000069", "4000000000000127", "4000000000000119",
    "4917610000000000", "4917610000000000003", "4444333322221111", "4988438843884305", "4035501000000008",
    "4400000000000008", "4462030000000000", "4917300800000000", "4263982640269299",
    "5555555555554444", "2223003122003222", "5200828282828210", "5105105105105100", "5431111111111111",
    "5454545454545454", "5555341244441115", "2222400070000005", "5577000055770004", "5425233430109903",
    "2223000048410010", "5500000000000004", "5185540810000019",
    "378282246310005", "371449635398431", "378734493671000", "370000000000002", "340000000000009",
    "6011111111111117", "6011000990139424", "6011601160116611", "6445644564456445", "6011000000000004",
    "3056930009020004", "36227206271667", "30569309025904", "38520000023237", "36006666333344",
    "3566002020360505", "3530111333300000", "3566111111111113", "3528000700000000",
    "6200000000000005", "6250941006528599", "6243030000000001",
})

_CPF_W1 = range(10, 1, -1)
_CPF_W2 = range(11, 1, -1)
_CNPJ_W1 = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_CNPJ_W2 = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """The card network an IIN belongs to, if its length fits that network (None: not a card)."""
    n = len(digits)
    d2, d4, d6 = int(digits[:2]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= d2 <= 55 or 2221 <= d4 <= 2720) and n == 16:
        return "mastercard"
    if d2 in (34, 37) and n == 15:
        return "amex"
    if (d4 == 6011 or d2 == 65 or 644 <= int(digits[:3]) <= 649 or 622126 <= d6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if 3528 <= d4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= int(digits[:3]) <= 305 or d2 in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if d2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if digits[:2] in ("50", "56", "57", "58", "63", "67") and 12 <= n <= 19:
        return "maestro/elo"
    if d4 in (3841, 6062) and 13 <= n <= 19:
        return "hipercard"
    return None


def is_card(digits: str) -> bool:
    """A real-looking card number: a known network and length, Luhn-valid, and not a published test
    number or a dummy with three or fewer distinct digits."""
    if not 12 <= len(digits) <= 19 or card_brand(digits) is None or not luhn(digits):
        return False
    return digits not in TEST_CARDS and len(set(digits)) > 3


def iban_ok(compact: str) -> bool:
    """ISO 13616: the country's length, then mod 97 of the rearranged number equals 1."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    total = 0
    for ch in moved:
        if ch.isdigit():
            total = (total * 10 + ord(ch) - 48) % 97
        elif "A" <= ch <= "Z":
            total = (total * 100 + ord(ch) - 55) % 97
        else:
            return False
    return total == 1


def cpf_ok(digits: str) -> bool:
    if len(digits) != 11 or len(set(digits)) == 1:
        return False
    nums = [ord(c) - 48 for c in digits]
    d1 = sum(n * w for n, w in zip(nums[:9], _CPF_W1, strict=True)) * 10 % 11 % 10
    d2 = sum(n * w for n, w in zip(nums[:10], _CPF_W2, strict=True)) * 10 % 11 % 10
    return nums[9] == d1 and nums[10] == d2


def cnpj_ok(chars: str) -> bool:
    """14 characters: 12 alphanumeric (value: ASCII - 48) then 2 check digits."""
    if len(chars) != 14 or not chars[12:].isdigit() or len(set(chars)) == 1:
        return False
    vals = [ord(c) - 48 for c in chars.upper()]
    if any(v < 0 or v > 42 for v in vals[:12]):
        return False

    def dv(part: list[int], weights: tuple[int, ...]) -> int:
        r = sum(v * w for v, w in zip(part, weights, strict=True)) % 11
        return 0 if r < 2 else 11 - r

    return vals[12] == dv(vals[:12], _CNPJ_W1) and vals[13] == dv(vals[:13], _CNPJ_W2)


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """SSA rules: no area 000, 666 or 900-999, no group 00, no serial 0000; not the two famous samples."""
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return f"{area}{group}{serial}" not in ("078051120", "219099999")  # the wallet-card and ad samples


_log2 = math.log2


def entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(s)
    if not n:
        return 0.0
    total = 0.0  # a loop, not `sum` over a generator: 3x cheaper, and the same additions in the same order
    for c in Counter(s).values():
        p = c / n
        total += p * _log2(p)
    return -total


# The entropy of a string of n characters, d of them distinct, lies between `_least_entropy(n, d)` (one
# character n - d + 1 times, the others once: the most uneven counts, which every other split majorises)
# and log2(d) (all equally often). A threshold that far from both is settled without the sum; the margin
# is five times the float error of `entropy` at BOUNDED_CHARS characters (below 2e-10), so the
# answer is the one `entropy(s) >= bits` gives, to the bit.
BOUNDED_CHARS = 100_000
_MARGIN = 1e-9


def _least_entropy(n: int, d: int) -> float:
    p = (n - d + 1) / n
    return (d - 1) / n * _log2(n) - p * _log2(p)


def entropy_at_least(s: str, bits: float, distinct: int | None = None) -> bool:
    """`entropy(s) >= bits`, computed only when the count of distinct characters (`distinct`, if the caller
    has it: `len(set(s))`) does not settle it."""
    n = len(s)
    if 0 < n <= BOUNDED_CHARS:
        d = len(set(s)) if distinct is None else distinct
        if _least_entropy(n, d) >= bits + _MARGIN:
            return True
        if _log2(d) < bits - _MARGIN:
            return False
    return entropy(s) >= bits
