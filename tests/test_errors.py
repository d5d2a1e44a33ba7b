"""Every error class and every code has one row in the table, rendered the same everywhere."""

from __future__ import annotations

import inspect

import gateway.errors as errors
from gateway.validate.rules import load_rules


def _classes() -> list[type[errors.GatewayError]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass)
            if issubclass(c, errors.GatewayError)]


def test_every_error_class_has_a_row() -> None:
    for cls in _classes():
        assert cls.code in errors.ERRORS, cls


def test_every_rule_code_is_registered() -> None:
    for rule in load_rules():
        spec = errors.ERRORS[rule.code]
        assert spec.en == rule.en and spec.zh == rule.zh


def test_rows_are_complete_and_exit_codes_small() -> None:
    for code, spec in errors.ERRORS.items():
        assert code.startswith("CEBGW-")
        assert spec.exit in (errors.EXIT_INVALID, errors.EXIT_USAGE)
        assert 400 <= spec.http < 600
        assert spec.ceb_status.startswith("-") and spec.ceb_status[1:].isdigit()
        assert spec.en and spec.zh


def test_registering_a_code_twice_with_another_meaning_fails() -> None:
    errors.register("CEBGW-TEST-ONCE", 400, 1, "-1", "a", "甲")
    errors.register("CEBGW-TEST-ONCE", 400, 1, "-1", "a", "甲")
    try:
        errors.register("CEBGW-TEST-ONCE", 400, 1, "-1", "b", "乙")
    except ValueError:
        pass
    else:
        raise AssertionError("a second meaning was accepted")
    finally:
        errors.ERRORS.pop("CEBGW-TEST-ONCE", None)


def test_same_error_renders_same_in_cli_and_api() -> None:
    exc = errors.ParseError("bad.xml:3: oops", code="CEBGW-PARSE-SYNTAX")
    body = exc.as_dict()
    assert body["code"] == "CEBGW-PARSE-SYNTAX" and exc.http_status == 400 and exc.exit_code == 1
    assert exc.findings[0].render("bad.xml").endswith("[CEBGW-PARSE-SYNTAX]")
