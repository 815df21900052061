"""Tests for bots.parse: inbound SMS/WhatsApp text -> command dataclasses."""

from __future__ import annotations

import dataclasses
import re
import typing
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bots.parse import (
    COMMAND_TYPES,
    EXTEND_MAX_DAYS,
    HELP_KEYWORDS,
    NOTES_MAX_LEN,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    Approve,
    Command,
    Decline,
    Help,
    Invalid,
    MissingCode,
    StaffExtend,
    StaffRemind,
    StaffStatus,
    StaffVoid,
    Start,
    Stop,
    Unknown,
    mask_code,
    parse,
)
from portico.phones import bare_phone, normalize_phone

YES_WORDS = ["YES", "Y", "APPROVE"]
NO_WORDS = ["NO", "N", "DECLINE"]
STAFF_WORDS = ["STATUS", "VOID", "EXTEND", "REMIND"]
ALL_KEYWORDS = sorted(
    {*YES_WORDS, *NO_WORDS, *STAFF_WORDS, *HELP_KEYWORDS, *OPT_OUT_KEYWORDS, *OPT_IN_KEYWORDS}
)


def expected_free_text(text: str) -> str | None:
    """Independent statement of the notes/reason rule: collapse, truncate, None if empty."""
    collapsed = " ".join(text.split())[:NOTES_MAX_LEN].rstrip()
    return collapsed or None


# --------------------------------------------------------------------------------------------
# API shape
# --------------------------------------------------------------------------------------------


def test_command_alias_covers_every_type() -> None:
    assert set(typing.get_args(Command)) == set(COMMAND_TYPES)
    for cls in COMMAND_TYPES:
        assert dataclasses.is_dataclass(cls)
        assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_commands_are_frozen() -> None:
    cmd = Approve("1234", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cmd.code = "9999"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Client: YES / NO
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("YES 1234", Approve("1234", None)),
        ("yes 1234", Approve("1234", None)),
        ("Yes 12345678", Approve("12345678", None)),
        ("  yEs   1234  ", Approve("1234", None)),
        ("\n\tYES\t1234\n", Approve("1234", None)),
        ("YES 1234 Looks GOOD, thanks!", Approve("1234", "Looks GOOD, thanks!")),
        ("YES 1234   please   start\n\nMonday ", Approve("1234", "please start Monday")),
        ("YES. 1234", Approve("1234", None)),
        ("YES! 1234!", Approve("1234", None)),
        ("Yes 1234.", Approve("1234", None)),
        ("YES #1234", Approve("1234", None)),
        ("YES 1234, go ahead", Approve("1234", "go ahead")),
        ("APPROVE 4821", Approve("4821", None)),
        ("approve 4821 ok", Approve("4821", "ok")),
        ("Y 4821", Approve("4821", None)),
        ("y 4821 fine by me", Approve("4821", "fine by me")),
        ("YES1234", Approve("1234", None)),
        ("yes:1234 ok", Approve("1234", "ok")),
    ],
)
def test_approve(text: str, expected: Approve) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NO 1234 too expensive", Decline("1234", "too expensive")),
        ("no 1234 Too   Expensive\nfor now.", Decline("1234", "Too Expensive for now.")),
        ("No 1234", Decline("1234", None)),
        ("NO 1234.", Decline("1234", None)),
        ("NO 1234   ", Decline("1234", None)),
        ("  nO\t98765432 wrong color ", Decline("98765432", "wrong color")),
        ("DECLINE 4821 not now", Decline("4821", "not now")),
        ("decline 4821", Decline("4821", None)),
        ("N 4821 no budget", Decline("4821", "no budget")),
        ("n 4821", Decline("4821", None)),
        ("NO1234 nope", Decline("1234", "nope")),
    ],
)
def test_decline(text: str, expected: Decline) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "verb"),
    [
        ("YES", "YES"),
        ("yes", "YES"),
        ("  Yes!  ", "YES"),
        ("Y", "YES"),
        ("APPROVE", "YES"),
        ("YES please", "YES"),
        ("YES 48 21", "YES"),
        ("YES 123", "YES"),
        ("YES 123456789", "YES"),
        ("YES 12a4", "YES"),
        ("YES 1234-5678", "YES"),
        ("NO", "NO"),
        ("no.", "NO"),
        ("N", "NO"),
        ("DECLINE", "NO"),
        ("No thanks", "NO"),
        ("NO 48 21 too much", "NO"),
    ],
)
def test_missing_code(text: str, verb: str) -> None:
    assert parse(text) == MissingCode(verb=verb)  # type: ignore[arg-type]


def test_notes_truncated_to_limit() -> None:
    result = parse("YES 1234 " + "a" * 5000)
    assert result == Approve("1234", "a" * NOTES_MAX_LEN)


def test_notes_truncation_does_not_leave_trailing_space() -> None:
    notes = "a" * (NOTES_MAX_LEN - 1) + " bcd"
    result = parse(f"NO 1234 {notes}")
    assert result == Decline("1234", "a" * (NOTES_MAX_LEN - 1))


def test_notes_keep_original_characters() -> None:
    assert parse("YES 1234 Café — “ok” ✅ ｏｋ") == Approve("1234", "Café — “ok” ✅ ｏｋ")


# --------------------------------------------------------------------------------------------
# Client: HELP / STOP / START
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["HELP", "help", " Help! ", "INFO", "info.", "HELP me please"])
def test_help(text: str) -> None:
    assert parse(text) == Help()


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        "Stop.",
        " STOP! ",
        "STOPALL",
        "stopall",
        "UNSUBSCRIBE",
        "Unsubscribe",
        "CANCEL",
        "END",
        "end",
        "QUIT",
        "Quit!",
        "STOP texting me",
        "STOP ALL",
        "\ufeffSTOP",
        "ＳＴＯＰ",
    ],
)
def test_stop(text: str) -> None:
    assert parse(text) == Stop()


@pytest.mark.parametrize("text", ["START", "start", "Start!", "UNSTOP", "unstop."])
def test_start(text: str) -> None:
    assert parse(text) == Start()


# --------------------------------------------------------------------------------------------
# Staff
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STATUS CO-17", StaffStatus("CO-17")),
        ("status co-17", StaffStatus("co-17")),
        ("STATUS #42", StaffStatus("42")),
        ("STATUS 42", StaffStatus("42")),
        ("STATUS # 42", StaffStatus("42")),
        ("STATUS EST-2031?", StaffStatus("EST-2031")),
        ("Status: PO/55", StaffStatus("PO/55")),
        ("  status\tCO-17  extra words ", StaffStatus("CO-17")),
        ("STATUS CO\u201317", StaffStatus("CO-17")),
        ("STATUS ＣＯ－１７", StaffStatus("CO-17")),
        ("REMIND CO-17", StaffRemind("CO-17")),
        ("remind #42.", StaffRemind("42")),
        ("VOID CO-17", StaffVoid("CO-17", None)),
        ("VOID #42 Client   changed\nscope", StaffVoid("42", "Client changed scope")),
        ("void po/55 dup", StaffVoid("po/55", "dup")),
        ("EXTEND CO-17 7", StaffExtend("CO-17", 7)),
        ("extend #42 180", StaffExtend("42", 180)),
        ("EXTEND #42 1", StaffExtend("42", 1)),
        ("EXTEND CO-17 7 days", StaffExtend("CO-17", 7)),
        ("EXTEND CO-17 14d", StaffExtend("CO-17", 14)),
        ("EXTEND CO-17 007.", StaffExtend("CO-17", 7)),
        ("EXTEND CO-17 ７", StaffExtend("CO-17", 7)),
    ],
)
def test_staff_commands(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("days", ["0", "181", "-3", "seven", "7.5", "1e3", "", "99999999999999999"])
def test_extend_bad_days(days: str) -> None:
    result = parse(f"EXTEND CO-17 {days}")
    assert isinstance(result, Invalid)
    assert result.message == "EXTEND needs a number of days from 1 to 180, e.g. EXTEND CO-17 7"


@pytest.mark.parametrize("verb", STAFF_WORDS)
@pytest.mark.parametrize("suffix", ["", "   ", " #", ".", "\n"])
def test_staff_missing_ref(verb: str, suffix: str) -> None:
    result = parse(verb + suffix)
    assert isinstance(result, Invalid)
    assert "approval number or document number" in result.message
    assert f"e.g. {verb} " in result.message


def test_staff_ref_too_long() -> None:
    result = parse("STATUS " + "X" * 500)
    assert isinstance(result, Invalid)
    assert "too long" in result.message


# --------------------------------------------------------------------------------------------
# Unknown / robustness
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["hello", "What is this?", "1234", "YESS 1234", "N95 masks", "ok 1234", "🙂", "？？"],
)
def test_unknown(text: str) -> None:
    assert parse(text) == Unknown(text)


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t \u3000"])
def test_empty_is_unknown(text: str | None) -> None:
    assert parse(text) == Unknown("")


def test_unknown_text_is_stripped() -> None:
    assert parse("  hi there \n") == Unknown("hi there")


@pytest.mark.parametrize(
    "text",
    [
        "\ud800YES 1234",
        "YES \udfff",
        "\x00\x00",
        "EXTEND \ufdfa \ufdfa",
        "YES ⑴⑵⑶⑷",
        "STATUS ﷺ",
        "yes \u0301\u0301 1234",
        "İNFO",
        "ß" * 10,
    ],
)
def test_weird_unicode_does_not_crash(text: str) -> None:
    assert isinstance(parse(text), COMMAND_TYPES)


# --------------------------------------------------------------------------------------------
# Phones
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized", "bare"),
    [
        ("whatsapp:+1 (555) 010-0000", "whatsapp:+15550100000", "+15550100000"),
        ("WhatsApp:+1.555.010.0000", "whatsapp:+15550100000", "+15550100000"),
        ("+1 555 010 0000", "+15550100000", "+15550100000"),
        ("+15550100000", "+15550100000", "+15550100000"),
        ("(555) 010-0000", "5550100000", "5550100000"),
        ("\u202a+1 555\u2011010\u20110000\u202c", "+15550100000", "+15550100000"),
        ("whatsapp: +44 20 7946 0000", "whatsapp:+442079460000", "+442079460000"),
        ("", "", ""),
    ],
)
def test_phones(raw: str, normalized: str, bare: str) -> None:
    assert normalize_phone(raw) == normalized
    assert bare_phone(raw) == bare


def test_whatsapp_sender_matches_sms_approver() -> None:
    assert bare_phone("whatsapp:+15550100000") == bare_phone("+1 (555) 010-0000")


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

codes = st.from_regex(r"[0-9]{4,8}", fullmatch=True)
keyword_texts = st.builds(
    lambda kw, sep, rest: f"{kw}{sep}{rest}",
    st.sampled_from(ALL_KEYWORDS + [k.lower() for k in ALL_KEYWORDS]),
    st.sampled_from(["", " ", "  ", "\n", ".", "!", ":", "#"]),
    st.text(),
)
all_chars = st.text(st.characters(codec=None, exclude_categories=()))


@settings(deadline=None)
@given(st.one_of(st.text(), keyword_texts, all_chars))
@example("")
@example("YES")
@example("EXTEND CO-17 ")
def test_parse_never_raises(text: str) -> None:
    result = parse(text)
    assert isinstance(result, COMMAND_TYPES)
    if isinstance(result, Approve):
        assert result.notes is None or len(result.notes) <= NOTES_MAX_LEN
    if isinstance(result, StaffExtend):
        assert 1 <= result.days <= EXTEND_MAX_DAYS


@settings(deadline=None)
@given(codes, st.text())
@example("1234", "")
@example("00000000", "  Mixed   CASE\tnotes\n")
@example("4821", "x" * 2000)
def test_yes_round_trip(code: str, notes: str) -> None:
    assert parse(f"  yes {code}  {notes} ") == Approve(code, expected_free_text(notes))


@settings(deadline=None)
@given(codes, st.text())
@example("1234", "")
@example("98765432", "Too  expensive.\n\nSorry")
def test_no_round_trip(code: str, reason: str) -> None:
    assert parse(f"  no {code}  {reason} ") == Decline(code, expected_free_text(reason))


@settings(deadline=None)
@given(st.sampled_from(YES_WORDS + NO_WORDS), codes, st.text())
def test_synonyms_round_trip(word: str, code: str, notes: str) -> None:
    result = parse(f"{word} {code} {notes}")
    cls = Approve if word in YES_WORDS else Decline
    assert result == cls(code, expected_free_text(notes))


@settings(deadline=None)
@given(st.sampled_from(ALL_KEYWORDS), st.data(), st.text())
def test_keyword_case_insensitive(keyword: str, data: st.DataObject, rest: str) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(keyword), max_size=len(keyword)))
    mixed = "".join(ch.lower() if flip else ch for ch, flip in zip(keyword, flips, strict=True))
    upper = parse(f"{keyword.upper()} {rest}")
    assert parse(f"{keyword.lower()} {rest}") == upper
    assert parse(f"{mixed} {rest}") == upper
    assert not isinstance(upper, Unknown)


@settings(deadline=None)
@given(
    st.sampled_from(["STATUS", "REMIND", "VOID"]),
    st.booleans(),
    st.from_regex(r"[A-Za-z]{1,4}[-/][0-9]{1,6}|[0-9]{1,9}", fullmatch=True),
)
def test_staff_ref_round_trip(verb: str, hashed: bool, ref: str) -> None:
    result = parse(f" {verb.lower()} {'#' if hashed else ''}{ref} ")
    expected = {
        "STATUS": StaffStatus(ref),
        "REMIND": StaffRemind(ref),
        "VOID": StaffVoid(ref, None),
    }[verb]
    assert result == expected


@settings(deadline=None)
@given(st.integers(min_value=-1000, max_value=1000))
def test_extend_days_range(days: int) -> None:
    result = parse(f"EXTEND CO-17 {days}")
    if 1 <= days <= EXTEND_MAX_DAYS:
        assert result == StaffExtend("CO-17", days)
    else:
        assert isinstance(result, Invalid)


@settings(deadline=None)
@given(st.text())
@example("whatsapp:+1 (555) 010-0000")
@example("WHATSAPP :+1")
def test_normalize_phone_idempotent(raw: str) -> None:
    once = normalize_phone(raw)
    assert normalize_phone(once) == once
    assert not any(ch.isspace() or ch in "-()." for ch in once)
    assert bare_phone(once) == bare_phone(raw) == once.removeprefix("whatsapp:")


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("YES 4821", "YES ****"),
        ("no 4821 too high, call me on 4821 4000", "no **** too high, call me on **** 4000"),
        ("YES4821 fine by me", "YES**** fine by me"),
        ("Approve #4821.", "Approve #****."),
        ("YES \uff14\uff18\uff12\uff11", "YES ****"),  # full-width digits
        ("YES \u0664\u0668\u0662\u0661", "YES ****"),  # Arabic-Indic digits
        ("YES 48\u200b21", "YES ****"),  # split by a zero-width space
        ("HELP", "HELP"),
        ("yes", "yes"),  # no code: nothing to hide
        ("STATUS 4821", "STATUS 4821"),  # a staff reference, not a reply code
        ("call me at 4821", "call me at 4821"),
    ],
)
def test_the_stored_reply_has_its_code_masked(text: str, stored: str) -> None:
    assert mask_code(text) == stored


@given(st.text(max_size=80))
def test_masking_never_leaves_the_code_of_a_reply(text: str) -> None:
    command = parse(text)
    masked = mask_code(text)
    if isinstance(command, Approve | Decline):
        digits = [
            "".join(str(unicodedata.decimal(c)) for c in unicodedata.normalize("NFKC", run))
            for run in re.findall(r"\d+", masked)
        ]
        assert command.code not in digits  # no run of digits in it is the code
        assert parse(masked) != command
    else:
        assert masked == text
