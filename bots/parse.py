"""Parse inbound SMS/WhatsApp texts into bot commands.

Pure functions only: no I/O, no settings, no database. :func:`parse` turns a message body into
one of the frozen dataclasses below and never raises for any ``str`` (or ``None``) input.

Client grammar (keywords are case-insensitive; only the first word decides the command)::

    YES <code> [notes]       APPROVE / Y / OUI / SI / SÍ are synonyms   -> Approve(code, notes)
    NO <code> [reason]       DECLINE / N / NON are synonyms             -> Decline(code, reason)
    YES / NO without a valid 4-8 digit code             -> MissingCode(verb="YES" | "NO")
    HELP, INFO                                          -> Help()
    STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT,
    ARRET / ARRÊT (fr), ALTO (es)                       -> Stop()
    START, UNSTOP                                       -> Start()

The French and Spanish words work whatever the sender's language (CONTRACT section 10);
accents are ignored in keywords (``SÍ`` = ``SI``, ``ARRÊT`` = ``ARRET``). :func:`language_hint`
says which language a keyword was in, for answering someone Portico knows nothing about.

Staff grammar (the caller decides whether the sender is staff; this module only recognises
the shape)::

    STATUS <ref>             -> StaffStatus(ref)
    VOID <ref> [reason]      -> StaffVoid(ref, reason)
    EXTEND <ref> <days>      -> StaffExtend(ref, days)      days is 1..180
    REMIND <ref>             -> StaffRemind(ref)
    malformed staff command  -> Invalid(message)            message is safe to text back

Anything else is ``Unknown(text)`` with the stripped original text.

Tolerance: leading/trailing/repeated whitespace (including tabs, newlines, NBSP and the
ideographic space), punctuation or emoji stuck to the keyword (``Yes!``, ``STOP.``), trailing
punctuation after a code or ref (``YES 1234.``), full-width letters and digits (NFKC), zero-width
and direction marks, and a keyword glued to its code (``YES1234``, ``no:1234``).

Opt-out keywords match as the first word even when more text follows ("Stop texting me"):
honouring an opt-out is always the safe reading. Twilio itself only acts on an exact keyword
match, so the caller should record the opt-out on its side as well.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from portico.phones import DASHES

__all__ = [
    "COMMAND_TYPES",
    "CODE_MAX_LEN",
    "CODE_MIN_LEN",
    "EXTEND_MAX_DAYS",
    "EXTEND_MIN_DAYS",
    "HELP_KEYWORDS",
    "NOTES_MAX_LEN",
    "OPT_IN_KEYWORDS",
    "OPT_OUT_KEYWORDS",
    "REF_MAX_LEN",
    "Approve",
    "Command",
    "Decline",
    "Help",
    "Invalid",
    "MissingCode",
    "StaffExtend",
    "StaffRemind",
    "StaffStatus",
    "StaffVoid",
    "Start",
    "Stop",
    "Unknown",
    "language_hint",
    "normalize_free_text",
    "parse",
]

CODE_MIN_LEN: Final = 4
CODE_MAX_LEN: Final = 8
NOTES_MAX_LEN: Final = 1000
REF_MAX_LEN: Final = 64
EXTEND_MIN_DAYS: Final = 1
EXTEND_MAX_DAYS: Final = 180

# Twilio's default keyword sets for Messaging Services (opt-out / opt-in / help).
# Plus the French and Spanish words for STOP, honoured the same way.
OPT_OUT_KEYWORDS: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ARRET", "ALTO"}
)
# Twilio also treats YES as opt-in; here a YES is an approval attempt (see MissingCode).
OPT_IN_KEYWORDS: Final = frozenset({"START", "UNSTOP"})
HELP_KEYWORDS: Final = frozenset({"HELP", "INFO"})

_YES_WORDS: Final = frozenset({"YES", "Y", "APPROVE", "OUI", "SI"})
_NO_WORDS: Final = frozenset({"NO", "N", "DECLINE", "NON"})
# Keywords that only one of Portico's other languages uses ("NO" is English and Spanish).
_LANGUAGE_OF: Final = {"OUI": "fr", "NON": "fr", "ARRET": "fr", "SI": "es", "ALTO": "es"}


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Approve:
    """Client approves the request identified by ``code``; optional free-text notes."""

    code: str
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class Decline:
    """Client declines ``code``; ``reason`` is None when they gave none (the bot asks)."""

    code: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class MissingCode:
    """A YES/NO (or synonym) without a valid 4-8 digit code."""

    verb: Literal["YES", "NO"]


@dataclass(frozen=True, slots=True)
class Help:
    """HELP or INFO."""


@dataclass(frozen=True, slots=True)
class Stop:
    """An opt-out keyword (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT)."""


@dataclass(frozen=True, slots=True)
class Start:
    """An opt-in keyword (START, UNSTOP)."""


@dataclass(frozen=True, slots=True)
class StaffStatus:
    """Staff asks for the status of an approval (id or document number)."""

    ref: str


@dataclass(frozen=True, slots=True)
class StaffVoid:
    """Staff voids an approval, optionally with a reason."""

    ref: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class StaffExtend:
    """Staff extends an approval's deadline by ``days`` (1..180)."""

    ref: str
    days: int


@dataclass(frozen=True, slots=True)
class StaffRemind:
    """Staff asks the bot to re-send the reminder for an approval."""

    ref: str


@dataclass(frozen=True, slots=True)
class Invalid:
    """A recognised staff keyword with bad arguments; ``message`` explains the expected form."""

    message: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """Anything not recognised; ``text`` is the original message, stripped."""

    text: str


Command: TypeAlias = (
    Approve
    | Decline
    | MissingCode
    | Help
    | Stop
    | Start
    | StaffStatus
    | StaffVoid
    | StaffExtend
    | StaffRemind
    | Invalid
    | Unknown
)

COMMAND_TYPES: Final[tuple[type, ...]] = (
    Approve,
    Decline,
    MissingCode,
    Help,
    Stop,
    Start,
    StaffStatus,
    StaffVoid,
    StaffExtend,
    StaffRemind,
    Invalid,
    Unknown,
)


# --------------------------------------------------------------------------------------------
# Token helpers
# --------------------------------------------------------------------------------------------

# Dash look-alikes phones and fancy keyboards produce, mapped to ASCII '-' in refs and phones.
_DASH_TABLE: Final = str.maketrans(dict.fromkeys(DASHES, "-"))
# Punctuation allowed to trail a code, ref or day count ("YES 1234." / "STATUS CO-17?").
_TRAILING_PUNCT: Final = ".!?,;:\u3002\u3001\u2026\uff61"
# Keyword glued to its code: "YES1234", "no:1234", "Approve#1234".
_GLUED: Final = re.compile(r"([A-Z]+)[#:,.\-]*([0-9]+)")
_DAYS: Final = re.compile(r"\+?([0-9]{1,6})(?:D|DAY|DAYS)?")


def _split1(text: str) -> tuple[str, str]:
    """Split off the first whitespace-delimited token; the rest keeps its original spacing."""
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1] if len(parts) > 1 else ""


_DIGIT_RUN = re.compile(r"\d+")  # \d: any Unicode decimal digit


def _clean(token: str) -> str:
    """NFKC-normalise a token and drop invisible format characters (ZWSP, BOM, LRM, ...)."""
    token = "".join(ch for ch in token if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFKC", token)


def _ascii_digits(token: str) -> str:
    """Map any Unicode decimal digit (Arabic-Indic, Devanagari, ...) to its ASCII digit."""
    out = []
    for ch in token:
        value = unicodedata.decimal(ch, None)
        out.append(str(value) if value is not None else ch)
    return "".join(out)


def _strip_non_alnum(token: str) -> str:
    start, end = 0, len(token)
    while start < end and not token[start].isalnum():
        start += 1
    while end > start and not token[end - 1].isalnum():
        end -= 1
    return token[start:end]


def _fold_accents(token: str) -> str:
    """'SÍ' -> 'SI', 'ARRÊT' -> 'ARRET': combining marks dropped."""
    decomposed = unicodedata.normalize("NFKD", token)
    return unicodedata.normalize(
        "NFKC", "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    )


def _keyword(token: str) -> str:
    """Canonical keyword form: cleaned, edge punctuation/emoji removed, accents dropped,
    upper-cased."""
    return _fold_accents(_ascii_digits(_strip_non_alnum(_clean(token)))).upper()


def language_hint(text: str | None) -> str | None:
    """'fr' or 'es' when the message starts with a keyword of that language only (OUI, NON,
    ARRÊT / SI, ALTO, glued to a code or not); else None."""
    if not isinstance(text, str):
        return None
    first, _ = _split1(text)
    keyword = _keyword(first) if first else ""
    glued = _GLUED.fullmatch(keyword)
    return _LANGUAGE_OF.get(glued.group(1) if glued else keyword)


def _code(token: str) -> str | None:
    """A 4-8 digit code, tolerating '#1234', '(1234)' and '1234.'; None if not a code."""
    candidate = _ascii_digits(_strip_non_alnum(_clean(token)))
    if CODE_MIN_LEN <= len(candidate) <= CODE_MAX_LEN and candidate.isascii():
        return candidate if candidate.isdigit() else None
    return None


def normalize_free_text(text: str, limit: int = NOTES_MAX_LEN) -> str | None:
    """Collapse whitespace runs to single spaces, truncate to ``limit`` chars; None if empty.

    Case and punctuation are kept exactly as the user typed them.
    """
    collapsed = " ".join(text.split())[:limit].rstrip()
    return collapsed or None


def _ref(token: str) -> str:
    """A staff reference: '#42' -> '42', 'co-17.' -> 'co-17' (case kept as sent)."""
    ref = _clean(token).translate(_DASH_TABLE).rstrip(_TRAILING_PUNCT)
    return ref.lstrip("#")


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


def mask_code(text: str, mask: str = "****") -> str:
    """The message as sent, with the reply code of a YES/NO masked (the code is a secret:
    stored copies of replies must not carry it). Invisible format characters are dropped, so
    a code split by one is masked too; any script's digits count. Other text is left alone."""
    command = parse(text)
    if not isinstance(command, Approve | Decline):
        return text
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return _DIGIT_RUN.sub(
        lambda m: (
            mask
            if _ascii_digits(unicodedata.normalize("NFKC", m.group())) == command.code
            else m.group()
        ),
        visible,
    )


def parse(text: str | None) -> Command:
    """Parse one inbound message body. Never raises for ``str`` or ``None`` input."""
    if not isinstance(text, str):
        return Unknown("")
    try:
        return _parse(text)
    except Exception:  # pragma: no cover - defensive: the bot must always be able to reply
        return Unknown(text.strip())


def _parse(text: str) -> Command:
    first, rest = _split1(text)
    if not first:
        return Unknown("")
    keyword = _keyword(first)

    if keyword in _YES_WORDS or keyword in _NO_WORDS:
        return _client_vote(keyword, rest)
    if keyword in HELP_KEYWORDS:
        return Help()
    if keyword in OPT_OUT_KEYWORDS:
        return Stop()
    if keyword in OPT_IN_KEYWORDS:
        return Start()
    staff = _STAFF.get(keyword)
    if staff is not None:
        return staff(rest)

    glued = _GLUED.fullmatch(keyword)
    if glued is not None:
        word, digits = glued.groups()
        if (word in _YES_WORDS or word in _NO_WORDS) and _code(digits) is not None:
            return _client_vote(word, f"{digits} {rest}")
    return Unknown(text.strip())


def _client_vote(keyword: str, rest: str) -> Command:
    is_yes = keyword in _YES_WORDS
    code_token, tail = _split1(rest)
    code = _code(code_token) if code_token else None
    if code is None:
        return MissingCode(verb="YES" if is_yes else "NO")
    free_text = normalize_free_text(tail)
    return Approve(code, free_text) if is_yes else Decline(code, free_text)


def _take_ref(rest: str) -> tuple[str, str]:
    """First token as a ref; a lone '#' followed by a space ("STATUS # 42") uses the next one."""
    token, tail = _split1(rest)
    ref = _ref(token)
    if not ref and token and tail:
        token, tail = _split1(tail)
        ref = _ref(token)
    return ref, tail


def _ref_problem(verb: str, ref: str, example: str) -> Invalid | None:
    if not ref:
        return Invalid(f"{verb} needs an approval number or document number, e.g. {verb} {example}")
    if len(ref) > REF_MAX_LEN:
        return Invalid(
            f"That reference is too long. {verb} needs an approval number or document "
            f"number, e.g. {verb} {example}"
        )
    return None


def _staff_status(rest: str) -> Command:
    ref, _ = _take_ref(rest)
    return _ref_problem("STATUS", ref, "CO-17 or STATUS #42") or StaffStatus(ref)


def _staff_remind(rest: str) -> Command:
    ref, _ = _take_ref(rest)
    return _ref_problem("REMIND", ref, "CO-17 or REMIND #42") or StaffRemind(ref)


def _staff_void(rest: str) -> Command:
    ref, tail = _take_ref(rest)
    problem = _ref_problem("VOID", ref, "CO-17 client changed scope")
    if problem is not None:
        return problem
    return StaffVoid(ref, normalize_free_text(tail))


def _staff_extend(rest: str) -> Command:
    ref, tail = _take_ref(rest)
    if not ref:
        return Invalid(
            "EXTEND needs an approval number or document number and a number of days from "
            f"{EXTEND_MIN_DAYS} to {EXTEND_MAX_DAYS}, e.g. EXTEND CO-17 7"
        )
    problem = _ref_problem("EXTEND", ref, "CO-17 7")
    if problem is not None:
        return problem
    days_token, _ = _split1(tail)
    days_text = _ascii_digits(_clean(days_token)).rstrip(_TRAILING_PUNCT).upper()
    match = _DAYS.fullmatch(days_text) if days_text.isascii() else None
    if match is not None:
        days = int(match.group(1))
        if EXTEND_MIN_DAYS <= days <= EXTEND_MAX_DAYS:
            return StaffExtend(ref, days)
    return Invalid(
        f"EXTEND needs a number of days from {EXTEND_MIN_DAYS} to {EXTEND_MAX_DAYS}, "
        f"e.g. EXTEND {ref} 7"
    )


_STAFF: Final = {
    "STATUS": _staff_status,
    "VOID": _staff_void,
    "EXTEND": _staff_extend,
    "REMIND": _staff_remind,
}
