"""Settings, tokens, problems and health: the pieces every service is built from."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from shared.auth import CallerAuth
from shared.contracts.mongo import safe_document
from shared.contracts.pages import InvalidCursor, decode_cursor, encode_cursor
from shared.settings import ServiceSettings, load_settings, parse_service_tokens


def test_service_tokens_parse_and_stay_secret() -> None:
    tokens = parse_service_tokens(" api = aaaaaaaaaaaaaaaa , bot=bbbbbbbbbbbbbbbb, api=cccccccccccccccc")
    assert set(tokens) == {"api", "bot"}
    assert [token.get_secret_value() for token in tokens["api"]] == ["a" * 16, "c" * 16]  # rotating
    assert "aaaa" not in repr(tokens)


def test_one_token_for_two_callers_is_refused() -> None:
    with pytest.raises(ValueError, match="listed for both 'api' and 'bot'"):
        parse_service_tokens("api=aaaaaaaaaaaaaaaa,bot=aaaaaaaaaaaaaaaa")


@pytest.mark.parametrize("value", ["api", "api=short", "=aaaaaaaaaaaaaaaa", ""])
def test_malformed_service_tokens_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="caller=token pairs"):
        parse_service_tokens(value)


def test_the_caller_is_found_by_token_and_unknown_tokens_match_nobody() -> None:
    auth = CallerAuth({"api": (SecretStr("a" * 16),), "bot": (SecretStr("b" * 16),)}, {})
    assert auth.caller("b" * 16) == "bot"
    assert auth.caller("c" * 16) is None
    assert auth.caller("") is None


def test_a_bad_setting_exits_2_with_one_line_per_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORT", "99999")
    with pytest.raises(SystemExit) as exit_:
        load_settings(ServiceSettings, "demo")
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "demo: setting PORT: Input should be less than or equal to 65535\n"


def test_cursors_round_trip_and_foreign_cursors_are_refused() -> None:
    assert decode_cursor(encode_cursor(42), int) == (42,)
    assert decode_cursor(encode_cursor("2026-11-25T10:00:00", "ab12"), str, str) == (
        "2026-11-25T10:00:00",
        "ab12",
    )
    for bad in ["!!!", encode_cursor("42"), encode_cursor(1, 2), "e30="]:
        with pytest.raises(InvalidCursor):
            decode_cursor(bad, int)


def test_safe_document_accepts_plain_nested_data() -> None:
    doc = {"order": {"id": 1, "lines": [{"sku": "a"}]}, "note": "a $ sign in a value is fine"}
    assert safe_document(doc) == doc
