"""Personal data in seed examples: pattern recognisers tuned for precision on taxonomy text.

Each recogniser finds candidates with a regular expression and keeps those that pass the checks
the format has (Luhn for cards, mod-97 for IBANs, the SSA's rules for SSNs, libphonenumber for
phone numbers, the address registries for IPs). Values made for documentation are not personal
data and are not reported: example.com/.org/.net and reserved domains, role mailboxes (info@,
support@ ...), 555-0100 to 555-0199 and the UK drama ranges, RFC 5737 / RFC 3849 and every
non-global IP range, well-known public resolvers, test card numbers and IBAN examples, dates,
version strings and numbers inside URLs.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import phonenumbers

ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "STREET_ADDRESS",
)

# When candidates overlap, the stronger evidence wins (checksums beat shapes).
_PRIORITY = {
    "CREDIT_CARD": 0,
    "IBAN_CODE": 1,
    "EMAIL_ADDRESS": 2,
    "US_SSN": 3,
    "IP_ADDRESS": 4,
    "PHONE_NUMBER": 5,
    "STREET_ADDRESS": 6,
}


@dataclass(frozen=True)
class PiiFinding:
    entity: str
    start: int  # character offsets into the scanned text, end exclusive
    end: int
    score: float
    masked: str  # the value with most characters hidden, safe to show


# ---- e-mail

_EMAIL = re.compile(
    r"(?<![\w.+-])([A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63}[A-Za-z0-9_-])?)@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,24}|xn--[a-z0-9-]{2,59}))"
    r"(?![\w-]|\.[A-Za-z0-9])"
)
_DOC_DOMAINS = ("example.com", "example.org", "example.net", "example.edu")
_DOC_SUFFIXES = (".example", ".test", ".invalid", ".localhost", ".local")
_ROLE_MAILBOXES = frozenset(
    """info support contact help helpdesk sales press media admin administrator webmaster
    postmaster hostmaster abuse noreply no-reply donotreply do-not-reply privacy security legal
    marketing office hello team service services customerservice customer.service feedback
    enquiries enquiry inquiries inquiry jobs careers recruiting hr billing accounts orders
    newsletter events editor editors news general reception secretary pr git root nobody
    mailer-daemon notifications community partners licensing copyright dpo""".split()
)


# Local parts that tutorials use for made-up people.
_PLACEHOLDER_LOCAL = re.compile(
    r"^(?:(?:john|jane)[._-]?doe|j[._-]?doe|user|username|test|tester|foo|bar|baz|your[._-]?name|"
    r"your[._-]?email|first[._-]?name[._-]?last[._-]?name|firstname|name|someone|somebody|me|you|"
    r"alice|bob|email|mail|sample)\d*$"
)


def _emails(text: str, lo: int, hi: int) -> Iterator[tuple[str, int, int, float]]:
    for match in _EMAIL.finditer(text, lo, hi):
        local, domain = match.group(1).lower(), match.group(2).lower()
        if domain in _DOC_DOMAINS or domain.endswith(tuple("." + d for d in _DOC_DOMAINS)):
            continue
        if domain.endswith(_DOC_SUFFIXES) or domain == "localhost":
            continue
        if domain.endswith("noreply.github.com") or _PLACEHOLDER_LOCAL.match(local):
            continue
        if local in _ROLE_MAILBOXES or any(
            part in _ROLE_MAILBOXES for part in re.split(r"[._+-]", local)
        ):
            continue
        yield "EMAIL_ADDRESS", match.start(), match.end(), 1.0


# ---- numbers with checksums

_CARD = re.compile(
    r"(?<![\w.,/-])(?:\d{12,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}|\d{4}([ -])\d{6}\2\d{4,5})"
    r"(?![\w/-]|[.,]\d)"
)
# Issuer prefixes: Visa 4, Mastercard 2/5, Amex/Diners/JCB 3, Discover/Maestro/UnionPay 6,
# JCB 1800, UATP 1 (15 digits).
_CARD_PREFIX = re.compile(r"^(?:[3-6]|2[1-7]|1800|1\d{14}$)")
_TEST_CARDS = frozenset(
    """4111111111111111 4012888888881881 4222222222222 5555555555554444 5105105105105100
    378282246310005 371449635398431 378734493671000 6011111111111117 6011000990139424
    30569309025904 38520000023237 3530111333300000 3566002020360505 4000056655665556
    5200828282828210 2223003122003222 4242424242424242 6200000000000005""".split()
)


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _cards(text: str, lo: int, hi: int) -> Iterator[tuple[str, int, int, float]]:
    for match in _CARD.finditer(text, lo, hi):
        digits = re.sub(r"\D", "", match.group())
        if not 12 <= len(digits) <= 19 or not _CARD_PREFIX.match(digits):
            continue
        if len(set(digits)) == 1 or digits in _TEST_CARDS or not luhn(digits):
            continue
        yield "CREDIT_CARD", match.start(), match.end(), 1.0


# Country code and IBAN length (SWIFT IBAN registry).
_IBAN_LENGTHS = {
    entry[:2]: int(entry[2:])
    for entry in """
    AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DK18
    DO28 EE20 EG29 ES24 FI18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 IL23
    IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 MC27 MD24 ME22 MK19 MR27
    MT31 MU30 NL18 NO15 PK24 PL28 PS29 PT25 QA29 RO24 RS22 SA24 SC31 SE24 SI19 SK24 SM27
    ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20
    """.split()
}
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})(\d{2})(?=[ ]?[A-Za-z0-9])")
# Examples printed in banking documentation.
_DOC_IBANS = frozenset(
    """GB82WEST12345698765432 GB29NWBK60161331926819 GB33BUKB20201555555555
    DE89370400440532013000 FR1420041010050500013M02606 NL91ABNA0417164300
    CH9300762011623852957 BE68539007547034 ES9121000418450200051332 IT60X0542811101000000123456
    AT611904300234573201 DK5000400440116243 FI2112345600000785 NO9386011117947
    SE4550000000058398257466 IE29AIBK93115212345678 PL61109010140000071219812874""".split()
)


def iban_valid(compact: str) -> bool:
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def _ibans(text: str, lo: int, hi: int) -> Iterator[tuple[str, int, int, float]]:
    for match in _IBAN_START.finditer(text, lo, hi):
        country = match.group(1).upper()
        length = _IBAN_LENGTHS.get(country)
        if length is None:
            continue
        chars = [country, match.group(2)]
        count = 4
        pos = match.end()
        while count < length and pos < len(text):
            char = text[pos]
            if char.isascii() and char.isalnum():
                chars.append(char)
                count += 1
                pos += 1
            elif char == " " and pos + 1 < len(text) and text[pos + 1].isalnum():
                pos += 1
            else:
                break
        if count != length or (pos < len(text) and text[pos].isascii() and text[pos].isalnum()):
            continue
        compact = "".join(chars).upper()
        if compact in _DOC_IBANS or not iban_valid(compact):
            continue
        yield "IBAN_CODE", match.start(), pos, 1.0


_SSN = re.compile(r"(?<![\w.,/-])(\d{3})([- .])(\d{2})\2(\d{4})(?![\w/-]|[.,]\d)")
_SSN_BARE = re.compile(r"(?<![\w.,/-])(\d{3})(\d{2})(\d{4})(?![\w/-]|[.,]\d)")
_SSN_CONTEXT = re.compile(r"\b(?:ssn|ssns|social security|soc\.? sec|ss ?#|taxpayer id)", re.I)
# Numbers the SSA voided after they were printed (the Woolworth wallet card) or that are
# classic placeholders.
_DOC_SSNS = frozenset({"078051120", "219099999", "123456789", "457555462"})


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return area + group + serial not in _DOC_SSNS


def _ssns(text: str, lo: int, hi: int) -> Iterator[tuple[str, int, int, float]]:
    for match in _SSN.finditer(text, lo, hi):
        if _ssn_ok(match.group(1), match.group(3), match.group(4)):
            yield "US_SSN", match.start(), match.end(), 0.85
    for match in _SSN_BARE.finditer(text, lo, hi):
        if not _ssn_ok(match.group(1), match.group(2), match.group(3)):
            continue
        if _SSN_CONTEXT.search(text, max(0, match.start() - 40), match.start()):
            yield "US_SSN", match.start(), match.end(), 0.6


# ---- IP addresses

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.=])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w+]|\.\w)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:)"
    r"(?:[0-9A-Fa-f]{1,4}|:)(?::[0-9A-Fa-f]{0,4}){1,7}"
    rf"(?:(?<=:)(?:{_OCTET}\.){{3}}{_OCTET})?(?:%[A-Za-z0-9]+)?(?![\w:]|\.\d)"
)
_PUBLIC_SERVICE_IPS = frozenset(
    """8.8.8.8 8.8.4.4 1.1.1.1 1.0.0.1 9.9.9.9 149.112.112.112 208.67.222.222 208.67.220.220
    1.2.3.4 4.3.2.1 4.4.4.4 2001:4860:4860::8888 2001:4860:4860::8844 2606:4700:4700::1111
    2606:4700:4700::1001""".split()
)
_VERSION_CONTEXT = re.compile(
    r"(?:\bv|version|release|build|firmware|runtime|section|§|chapter|clause|rule|oid)\s*[:.=]?\s*$",
    re.I,
)


def _global(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_global
    return address.is_global and not address.is_multicast


def _ipv4(text: str, lo: int, hi: int) -> Iterator[tuple[str, int, int, float]]:
    for match in _IPV4.finditer(text, lo, hi):
        value = match.group()
        if value in _PUBLIC_SERVICE_IPS:
            continue
        octets = value.split(".")
        if octets[1] == octets[2] == "0":
            continue  # "21.0.0.3": a version number far more often than a host
        if _VERSION_CONTEXT.search(text, max(0, match.start() - 12), match.start()):
            continue
        if _global(ipaddress.IPv4Address(value)):
            yield "IP_ADDRESS", match.start(), match.end(), 0.8


def _ipv6(text: str, lo: int, hi: int) -> Iterator[tuple[str, int, int, float]]:
    for match in _IPV6.finditer(text, lo, hi):
        value = match.group().split("%", 1)[0]
        try:
            address = ipaddress.IPv6Address(value)
        except ValueError:
            continue
        if value.lower() in _PUBLIC_SERVICE_IPS or not _global(address):
            continue
        yield "IP_ADDRESS", match.start(), match.end(), 0.8


# ---- phone numbers

_PHONE = re.compile(
    r"(?<![\w@/+.=-])(?<!\d[ ])"
    r"(?:\+\d{1,3}[ .-]?)?"
    r"(?:\(\d{1,5}\)[ .-]?|\d{1,5}[ .-]?)?"
    r"(?:\(0\)[ .-]?)?"
    r"\d{1,10}(?:[ .-]\d{1,8}){0,5}"
    r"(?:[ ]?(?:x|ext\.?|#)[ ]?\d{1,6})?"
    r"(?![\w@/=]|[ -]\d|[.,:]\d|\.\w)"
)
_PHONE_CONTEXT = re.compile(
    r"\b(?:phones?|tel|telephone|mobile|cell|fax|call|calling|called|dial|text me|sms|whatsapp|"
    r"contact|desk|office|reach|ring|number|hotline|landline|answering|messages?|registered|"
    r"ph|mob)\b",
    re.I,
)
_DATE_LIKE = re.compile(
    r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./](?:\d{4}|\d{2}))$"
)
_DATE_START = re.compile(r"^\d{4}-\d{2}-\d{2}\b")
_OTHER_NUMBER_CONTEXT = re.compile(
    r"\b(?:licen[cs]e|passport|account|routing|policy|member(?:ship)?|employee|student|"
    r"customer|tracking|serial|badge|vin|iban|swift|bic|sort code|isbn|identification|"
    r"identity|tax|ein|tin|mmsi|imo|registration|case|docket|patent)\b",
    re.I,
)
_YEARS = re.compile(r"^(?:1[5-9]|20)\d\d(?:\s*[-–/ ]\s*(?:1[5-9]|20)\d\d)+$")
_NOT_PHONE_BEFORE = re.compile(
    r"(?:isbn(?:-1[03])?|issn|doi|patent|serial|model|part|order|invoice|case|ref|zip|postal|"
    r"postcode|population|version|v|id|no\.|#|[$€£¥₹])\s*[:#]?\s*$",
    re.I,
)
_NOT_PHONE_AFTER = re.compile(
    r"^\s*(?:%|percent|km|kg|mi|miles|meters|metres|people|persons|years|inhabitants|dollars|"
    r"usd|eur|gbp|bytes|mb|gb|tb|hz|mhz|ghz|°)",
    re.I,
)
_PHONE_WORD = re.compile(
    r"\b(?:phones?|tel|telephone|mobile|cell|fax|call|calling|desk|office|whatsapp|sms|contact)\b",
    re.I,
)
_IP_LIKE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_GROUP_START = re.compile(r"(?<![\d])\d")
_PHONE_REGIONS = tuple(
    "US GB DE FR IN AU CA IT ES NL BE CH AT SE DK NO FI IE NZ JP CN BR MX IL ZA SG HK PL PT HU CZ "
    "TR KR".split()
)


_UK_DRAMA = tuple(
    "7700900 1632960 2079460 1134960 1144960 1154960 1174960 1184960 1214960 1314960 1414960 "
    "1514960 1614960 2890180 2920180 8081570 9098790".split()
)
_TOLL_FREE = frozenset({"800", "833", "844", "855", "866", "877", "888"})


def _documentation_phone(digits: str) -> bool:
    """Numbers that are not someone's: fiction ranges and toll-free business lines."""
    national = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
    if len(national) in (7, 10) and national[-7:-4] == "555" and national[-4:-2] == "01":
        return True  # NANP 555-0100..0199, reserved for fiction
    if len(national) == 10 and national[:3] in _TOLL_FREE:
        return True
    if national in "0123456789012345" or national in "9876543210" or len(set(national)) <= 2:
        return True  # 123-456-7890, 000-0000: placeholders
    if len(national) == 10 and all(
        len(set(part)) == 1 for part in (national[:3], national[3:6], national[6:])
    ):
        return True  # 111-222-3333
    # UK numbers Ofcom reserves for drama
    uk = digits[2:] if digits.startswith("44") else digits[1:] if digits.startswith("0") else ""
    return uk.startswith(_UK_DRAMA)


@functools.lru_cache(maxsize=4096)
def _phone_valid(candidate: str) -> bool:
    if candidate.startswith("+"):
        try:
            number = phonenumbers.parse(candidate, None)
        except phonenumbers.NumberParseException:
            return False
        return phonenumbers.is_possible_number(number)
    for region in _PHONE_REGIONS:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            return False
        if phonenumbers.is_valid_number(number):
            return True
    return False


def _phones(text: str, lo: int, hi: int) -> Iterator[tuple[str, int, int, float]]:
    for match in _PHONE.finditer(text, lo, hi):
        value = match.group()
        core = re.split(r"[ ]?(?:x|ext\.?|#)[ ]?(?=\d+$)", value, maxsplit=1)[0]
        digits = re.sub(r"\D", "", core)
        if not 7 <= len(digits) <= 15:
            continue
        if _DATE_LIKE.match(core) or _DATE_START.match(core) or _YEARS.match(core):
            continue
        if _documentation_phone(digits):
            continue
        start, end = match.start(), match.end()
        if _NOT_PHONE_BEFORE.search(text, max(0, start - 16), start):
            continue
        if _NOT_PHONE_AFTER.match(text, end, min(len(text), end + 16)):
            continue
        separators = set(re.sub(r"[\d()+]", "", core))
        if "." in separators and len(separators) > 1:
            continue  # "5.14.0-70.26.1", "(59.04-100.00)": versions and ranges
        if "." in separators and _IP_LIKE.match(core):
            continue  # addresses are the IP recogniser's, private ones included
        groups = re.findall(r"\d+", core)
        if len(groups) > 6 or (
            len(groups) > 4
            and not core.startswith(("+", "(", "0"))
            and len({len(g) for g in groups}) > 1
        ):
            continue  # "80 97 114 105 115": a list of numbers
        separated = bool(separators) or core.startswith(("+", "("))
        before = text[max(0, start - 48) : start]
        after = text[end : end + 24]
        if separated and len(digits) >= 9:
            pass  # shaped like a phone number on its own
        elif separated:
            if not (_PHONE_CONTEXT.search(before) or _PHONE_CONTEXT.search(after)):
                continue
        elif not (_PHONE_WORD.search(before) or _PHONE_WORD.search(after)):
            continue  # a bare run of digits is a phone number only when the text says so
        if _OTHER_NUMBER_CONTEXT.search(before[-24:]) or (
            not _PHONE_WORD.search(before) and _OTHER_NUMBER_CONTEXT.search(before)
        ):
            continue
        if any(_STREET.match(text, start + m.start()) for m in _GROUP_START.finditer(value)):
            continue  # "17151 2450 Crown St": a house number, not a phone
        if not _phone_valid(core):
            continue
        yield "PHONE_NUMBER", start, end, 0.75 if _PHONE_CONTEXT.search(before) else 0.6


# ---- street addresses

_STREET_TYPES = (
    r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace|"
    r"Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Crescent|Close|Alley|Plaza|Loop|Pike|"
    r"Ridge|Grove|Gardens|Heights|Expressway|Crossing|Manor|Mews|Causeway|Turnpike|Walk"
)
_STREET = re.compile(
    r"(?<![\w,.-])\d{1,6}[A-Za-z]?(?:-\d{1,4})?,?\s+"
    r"(?:(?:[NSEW]|North|South|East|West|Old|New)\.?\s+)?"
    r"(?:[A-Z][A-Za-z'’-]+\.?\s+|\d{1,3}(?:st|nd|rd|th)\s+){1,4}"
    rf"(?:{_STREET_TYPES})\b\.?"
    r"(?:,?\s+(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|#)\s*[A-Za-z0-9-]+)?"
)
_FAMOUS_ADDRESSES = (
    "1600 pennsylvania",
    "10 downing street",
    "221b baker street",
    "350 fifth avenue",
    "1600 amphitheatre parkway",
    "1 infinite loop",
    "1 apple park way",
    "100 east davie street",
    "4 privet drive",
    "742 evergreen terrace",
    "1060 west addison",
)


def _streets(text: str, lo: int, hi: int) -> Iterator[tuple[str, int, int, float]]:
    for match in _STREET.finditer(text, lo, hi):
        folded = " ".join(match.group().lower().split())
        if folded.startswith(_FAMOUS_ADDRESSES):
            continue
        yield "STREET_ADDRESS", match.start(), match.end(), 0.6


# ---- masking and the scan


def mask(entity: str, value: str) -> str:
    """Enough of a value to find it again, never all of it."""
    if entity == "EMAIL_ADDRESS" and "@" in value:
        local, _, domain = value.partition("@")
        head, _, tld = domain.rpartition(".")
        return f"{local[:1]}***@{head[:1]}***.{tld}"
    if entity == "STREET_ADDRESS":
        words = value.split()
        return " ".join(["#" * len(words[0]), *(w[:1] + "…" for w in words[1:-1]), words[-1]])
    keep = 2 if len(value) >= 8 else 1
    masked = "".join("•" if ch.isalnum() else ch for ch in value[:-keep]) + value[-keep:]
    if entity == "IBAN_CODE":
        masked = value[:2] + masked[2:]
    return masked


Recogniser = Callable[[str, int, int], Iterator[tuple[str, int, int, float]]]
# Formats made of a run of digits (with separators): searched only around such runs.
_IN_NUMBERS: dict[str, Recogniser] = {
    "CREDIT_CARD": _cards,
    "IBAN_CODE": _ibans,
    "US_SSN": _ssns,
    "IP_ADDRESS": _ipv4,
    "PHONE_NUMBER": _phones,
}
# Seven or more characters of digits and separators; every number format above has one.
_NUMBER_RUN = re.compile(r"\d[\d \t().+/-]{5,}\d")
_MARGIN = 40  # room around a run for prefixes (IBAN country code, +) and context checks
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"')\]]+", re.I)
_HAS_DIGIT = re.compile(r"\d")


def scan(
    text: str,
    *,
    entities: Collection[str] | None = None,
    allow: Callable[[str], bool] | None = None,
    min_score: float = 0.0,
) -> list[PiiFinding]:
    """Personal data found in ``text``, in order, without overlaps."""
    wanted = ENTITIES if entities is None else tuple(e for e in ENTITIES if e in entities)
    if not text:
        return []
    has_at = "@" in text
    has_digit = _HAS_DIGIT.search(text) is not None
    if not (has_at or has_digit):
        return []
    size = len(text)
    windows: list[tuple[int, int]] = []
    if has_digit:
        for run in _NUMBER_RUN.finditer(text):
            lo, hi = max(0, run.start() - _MARGIN), min(size, run.end() + _MARGIN)
            if windows and lo <= windows[-1][1]:
                windows[-1] = (windows[-1][0], hi)
            else:
                windows.append((lo, hi))
    raw: list[tuple[str, int, int, float]] = []
    for entity in wanted:
        if entity == "EMAIL_ADDRESS":
            if has_at:
                raw.extend(_emails(text, 0, size))
        elif entity == "STREET_ADDRESS":
            if has_digit:
                raw.extend(_streets(text, 0, size))
        else:
            recogniser = _IN_NUMBERS[entity]
            for lo, hi in windows:
                raw.extend(recogniser(text, lo, hi))
            if entity == "IP_ADDRESS" and ("::" in text or text.count(":") >= 6):
                raw.extend(_ipv6(text, 0, size))
    if not raw:
        return []
    urls = (
        [(m.start(), m.end()) for m in _URL.finditer(text)] if "/" in text or "www" in text else []
    )
    raw.sort(key=lambda item: (_PRIORITY[item[0]], item[1]))
    taken: list[tuple[int, int]] = []
    found: list[PiiFinding] = []
    for entity, start, end, score in raw:
        if score < min_score:
            continue
        if entity not in ("EMAIL_ADDRESS", "IP_ADDRESS") and any(
            s <= start and end <= e for s, e in urls
        ):
            continue  # identifiers inside links (revision ids, paths) are not personal data
        if any(start < e and s < end for s, e in taken):
            continue
        value = text[start:end]
        if allow is not None and allow(value):
            continue
        taken.append((start, end))
        found.append(PiiFinding(entity, start, end, score, mask(entity, value)))
    found.sort(key=lambda f: f.start)
    return found
