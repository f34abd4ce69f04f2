"""Eligibility rule language: operators, semantics of missing values, errors, compiled closures."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decisioning.rules import (
    DEFAULT_REASON,
    MAX_DEPTH,
    MAX_NODES,
    OPS,
    AllOf,
    AnyOf,
    Comparison,
    Not,
    Rule,
    RuleError,
    compile_rule,
    parse_rule,
)

# --- helpers ----------------------------------------------------------------------------------


def check(data: object, attributes: Mapping[str, Any]) -> bool:
    """Evaluate both ways, insist they agree, return the verdict."""
    rule = parse_rule(data)
    verdict = rule.evaluate(attributes)
    assert (compile_rule(rule)(attributes) is None) is verdict
    return verdict


def reference_reason(
    rule: Rule, attributes: Mapping[str, Any], inherited: str = DEFAULT_REASON
) -> str | None:
    """The reason-code contract of ``compile_rule``, written with ``evaluate`` only."""
    if rule.evaluate(attributes):
        return None
    reason = getattr(rule, "reason", None) or inherited
    if isinstance(rule, AllOf):
        failing = next(r for r in rule.rules if not r.evaluate(attributes))
        return reference_reason(failing, attributes, reason)
    if isinstance(rule, AnyOf):
        return reference_reason(rule.rules[0], attributes, reason)
    return reason


class Weird:
    """An attribute element whose ``==`` raises, as a numpy array's truth value does."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("ambiguous")

    __hash__ = object.__hash__


# --- operators --------------------------------------------------------------------------------

OPERATOR_CASES: list[tuple[str, object, object, bool]] = [
    # op, value, attribute value, expected
    ("==", 30, 30, True),
    ("==", 30, 30.0, True),
    ("==", 30, 31, False),
    ("==", 1, True, False),
    ("==", True, 1, False),
    ("==", True, True, True),
    ("==", False, False, True),
    ("==", False, 0, False),
    ("==", "gold", "gold", True),
    ("==", "gold", "Gold", False),
    ("==", "1", 1, False),
    ("!=", 30, 31, True),
    ("!=", 30, 30, False),
    ("!=", 1, True, True),
    ("!=", "gold", 5, True),
    ("<", 30, 29, True),
    ("<", 30, 30, False),
    ("<", 30, "29", False),
    ("<", 1, False, False),
    ("<", 30, math.nan, False),
    ("<=", 30, 30, True),
    ("<=", 30.5, 31, False),
    (">", 30, 31, True),
    (">", 30, 30, False),
    (">", 30, math.inf, True),
    (">=", 30, 30, True),
    (">=", 30, 29.999, False),
    (">=", "2024-01-01", "2024-06-30", True),
    (">=", "2024-01-01", "2023-12-31", False),
    ("<", "b", "a", True),
    ("<", "b", 1, False),
    ("in", ["mass", "affluent"], "mass", True),
    ("in", ["mass", "affluent"], "private", False),
    ("in", [1, 2], 2.0, True),
    ("in", [1, 2], True, False),
    ("in", [True], 1, False),
    ("in", [True, 1, "a"], True, True),
    ("in", [True, 1, "a"], False, False),
    ("in", [True, 1, "a"], 1, True),
    ("in", [True, 1, "a"], "a", True),
    ("in", ["a"], ["a"], False),
    ("in", ["a"], {"a": 1}, False),
    ("not_in", ["mass"], "private", True),
    ("not_in", ["mass"], "mass", False),
    ("not_in", [1], True, True),
    ("between", [21, 75], 21, True),
    ("between", [21, 75], 75, True),
    ("between", [21, 75], 75.01, False),
    ("between", [21, 75], 20, False),
    ("between", [0, 1], True, False),
    ("between", [0, 1], "0.5", False),
    ("between", [0, 1], math.nan, False),
    ("between", [5, 5], 5, True),
    ("contains", "card", ["card", "loan"], True),
    ("contains", "card", ("card",), True),
    ("contains", "card", frozenset({"card"}), True),
    ("contains", "card", {"card"}, True),
    ("contains", "card", ["loan"], False),
    ("contains", "card", [], False),
    ("contains", "card", "card", False),
    ("contains", "card", "a card", False),
    ("contains", "card", {"card": 1}, False),
    ("contains", 1, [True], False),
    ("contains", True, [1], False),
    ("contains", True, [True], True),
    ("contains", 1, [1.0], True),
    ("contains", "x", [Weird()], False),
    ("contains", "x", [Weird(), "x"], True),
    ("not_contains", "card", ["loan"], True),
    ("not_contains", "card", ["card"], False),
    ("not_contains", "card", 7, True),
    ("exists", None, 0, True),
    ("exists", None, False, True),
    ("exists", None, "", True),
    ("exists", None, [], True),
    ("not_exists", None, 0, False),
]


@pytest.mark.parametrize(("op", "value", "x", "expected"), OPERATOR_CASES)
def test_operator(op: str, value: object, x: object, expected: bool) -> None:
    data: dict[str, object] = {"attr": "a", "op": op}
    if value is not None:
        data["value"] = value
    assert check(data, {"a": x}) is expected


def test_every_operator_has_a_case() -> None:
    assert {op for op, *_ in OPERATOR_CASES} == OPS


POSITIVE = {"==": 1, "<": 1, "<=": 1, ">": 1, ">=": 1, "in": [1], "between": [0, 2],
            "contains": 1, "exists": None}  # fmt: skip
NEGATED = {"!=": 1, "not_in": [1], "not_contains": 1, "not_exists": None}


@pytest.mark.parametrize("missing", [{}, {"a": None}], ids=["absent", "none"])
@pytest.mark.parametrize("op", sorted(OPS))
def test_missing_attribute_fails_positive_and_passes_negated_ops(
    op: str, missing: dict[str, object]
) -> None:
    value = {**POSITIVE, **NEGATED}[op]
    data: dict[str, object] = {"attr": "a", "op": op}
    if value is not None:
        data["value"] = value
    assert check(data, missing) is (op in NEGATED)


def test_dotted_names_are_flat_keys() -> None:
    rule = {"attr": "address.country", "op": "==", "value": "PT"}
    assert check(rule, {"address.country": "PT"})
    assert not check(rule, {"address": {"country": "PT"}})


def test_boolean_operators() -> None:
    yes = {"attr": "a", "op": "exists"}
    no = {"attr": "a", "op": "not_exists"}
    attrs = {"a": 1}
    assert check({"all": [yes, yes]}, attrs)
    assert not check({"all": [yes, no]}, attrs)
    assert check({"any": [no, yes]}, attrs)
    assert not check({"any": [no, no, no]}, attrs)
    assert check({"not": no}, attrs)
    assert not check({"not": {"not": no}}, attrs)
    assert check({"all": [yes]}, attrs)
    assert not check({"any": [no]}, attrs)


# --- reason codes -----------------------------------------------------------------------------

AGE = {"attr": "age", "op": ">=", "value": 18}
SEGMENT = {"attr": "segment", "op": "in", "value": ["affluent", "private"]}


@pytest.mark.parametrize(
    ("data", "attributes", "expected"),
    [
        (AGE, {"age": 30}, None),
        (AGE, {"age": 16}, DEFAULT_REASON),
        ({**AGE, "reason": "TOO_YOUNG"}, {"age": 16}, "TOO_YOUNG"),
        ({"all": [AGE, SEGMENT], "reason": "OUTER"}, {"age": 16}, "OUTER"),
        (
            {"all": [{**AGE, "reason": "TOO_YOUNG"}, SEGMENT], "reason": "OUTER"},
            {"age": 16},
            "TOO_YOUNG",
        ),
        (
            {"all": [{**AGE, "reason": "TOO_YOUNG"}, SEGMENT], "reason": "OUTER"},
            {"age": 30, "segment": "mass"},
            "OUTER",
        ),
        (
            {"all": [AGE, {"all": [{**SEGMENT, "reason": "SEG"}], "reason": "MID"}]},
            {"age": 30, "segment": "mass"},
            "SEG",
        ),
        (
            {"all": [AGE, {"all": [SEGMENT], "reason": "MID"}], "reason": "TOP"},
            {"age": 30},
            "MID",
        ),
        # a failed any reports its first child's trace
        ({"any": [{**AGE, "reason": "A"}, {**SEGMENT, "reason": "S"}]}, {}, "A"),
        ({"any": [AGE, {**SEGMENT, "reason": "S"}], "reason": "ANY"}, {}, "ANY"),
        ({"any": [AGE, SEGMENT]}, {}, DEFAULT_REASON),
        ({"any": [AGE, SEGMENT]}, {"segment": "private"}, None),
        # a failed not stops there: its child passed, so its reason is not the cause
        ({"not": {**AGE, "reason": "INNER"}, "reason": "NOT"}, {"age": 30}, "NOT"),
        ({"all": [{"not": {**AGE, "reason": "INNER"}}], "reason": "TOP"}, {"age": 30}, "TOP"),
        ({"not": {**AGE, "reason": "INNER"}}, {"age": 30}, DEFAULT_REASON),
        ({"not": {**AGE, "reason": "INNER"}}, {"age": 3}, None),
    ],
)
def test_reason_codes(
    data: dict[str, Any], attributes: dict[str, Any], expected: str | None
) -> None:
    rule = parse_rule(data)
    assert compile_rule(rule)(attributes) == expected
    assert reference_reason(rule, attributes) == expected


# --- errors -----------------------------------------------------------------------------------

LEAF: dict[str, object] = {"attr": "a", "op": "exists"}
INT_KEY: dict[object, object] = {"attr": "a", "op": "exists", 3: 1}


def cmp(op: str, value: object) -> dict[str, object]:
    return {"attr": "a", "op": op, "value": value}


ERROR_CASES: list[tuple[object, str, str]] = [
    # data, path, fragment of the message
    ([], "rule", "must be an object"),
    ("all", "rule", "must be an object"),
    (None, "rule", "must be an object"),
    ({}, "rule", "exactly one of"),
    ({"reason": "X"}, "rule", "exactly one of"),
    ({"all": [LEAF], "any": [LEAF]}, "rule", "found all, any"),
    ({"not": LEAF, "attr": "a", "op": "exists"}, "rule", "found not, attr"),
    ({"all": []}, "rule.all", "non-empty"),
    ({"any": {}}, "rule.any", "must be a list"),
    ({"all": LEAF}, "rule.all", "must be a list"),
    ({"any": [LEAF, 5]}, "rule.any[1]", "must be an object"),
    ({"not": [LEAF]}, "rule.not", "must be an object"),
    ({"not": None}, "rule.not", "must be an object"),
    ({"all": [LEAF], "op": "=="}, "rule.op", "unknown key"),
    ({"not": LEAF, "value": 1}, "rule.value", "unknown key"),
    ({**LEAF, "extra": 1}, "rule.extra", "unknown key"),
    ({**LEAF, "bad key": 1}, "rule['bad key']", "unknown key"),
    (INT_KEY, "rule[3]", "unknown key"),
    ({"all": [{"not": {"attr": "a"}}]}, "rule.all[0].not.op", "required"),
    ({"attr": 5, "op": "exists"}, "rule.attr", "must be a string"),
    ({"attr": "1a", "op": "exists"}, "rule.attr", "must match"),
    ({"attr": "", "op": "exists"}, "rule.attr", "must match"),
    ({"attr": "a-b", "op": "exists"}, "rule.attr", "must match"),
    ({"attr": "a" * 65, "op": "exists"}, "rule.attr", "must match"),
    ({"attr": "a", "op": "="}, "rule.op", "must be one of"),
    ({"attr": "a", "op": 5}, "rule.op", "must be one of"),
    ({"attr": "a", "op": None}, "rule.op", "required"),
    ({"attr": "a", "op": "=="}, "rule.value", "required"),
    (cmp("==", None), "rule.value", "required"),
    (cmp("==", [1]), "rule.value", "got list"),
    (cmp("==", {"a": 1}), "rule.value", "got dict"),
    (cmp("==", math.nan), "rule.value", "finite"),
    (cmp("!=", math.inf), "rule.value", "finite"),
    (cmp("<", True), "rule.value", "got bool"),
    (cmp(">=", [1]), "rule.value", "got list"),
    (cmp("<=", -math.inf), "rule.value", "finite"),
    (cmp("in", []), "rule.value", "non-empty"),
    (cmp("in", "abc"), "rule.value", "must be a list"),
    (cmp("not_in", [1, [2]]), "rule.value[1]", "got list"),
    (cmp("in", [1, math.nan]), "rule.value[1]", "finite"),
    (cmp("in", [None]), "rule.value[0]", "got NoneType"),
    (cmp("between", 5), "rule.value", "must be a list"),
    (cmp("between", [1]), "rule.value", "2 items"),
    (cmp("between", [1, 2, 3]), "rule.value", "2 items"),
    (cmp("between", [2, 1]), "rule.value", "must not exceed"),
    (cmp("between", ["a", "b"]), "rule.value[0]", "got str"),
    (cmp("between", [0, True]), "rule.value[1]", "got bool"),
    (cmp("between", [0, math.inf]), "rule.value[1]", "finite"),
    (cmp("contains", ["card"]), "rule.value", "got list"),
    (cmp("not_contains", math.nan), "rule.value", "finite"),
    (cmp("exists", 1), "rule.value", "not allowed"),
    (cmp("not_exists", None), "rule.value", "not allowed"),
    ({**LEAF, "reason": ""}, "rule.reason", "1-64 characters"),
    ({**LEAF, "reason": "has space"}, "rule.reason", "1-64 characters"),
    ({**LEAF, "reason": "X" * 65}, "rule.reason", "1-64 characters"),
    ({**LEAF, "reason": 5}, "rule.reason", "1-64 characters"),
    ({**LEAF, "reason": None}, "rule.reason", "got null"),
    ({"all": [LEAF], "reason": "ok:but bad"}, "rule.reason", "1-64 characters"),
    ({"any": [LEAF, {**LEAF, "reason": "é"}]}, "rule.any[1].reason", "1-64 characters"),
]


@pytest.mark.parametrize(("data", "path", "fragment"), ERROR_CASES)
def test_error_names_its_path(data: object, path: str, fragment: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rule(data)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")
    assert fragment in info.value.message
    assert isinstance(info.value, ValueError)


def test_error_path_uses_the_given_root() -> None:
    data = {"all": [LEAF, cmp("in", [])]}
    with pytest.raises(RuleError, match=r"^eligibility_rules\.all\[1\]\.value: ") as info:
        parse_rule(data, path="eligibility_rules")
    assert info.value.path == "eligibility_rules.all[1].value"


def test_valid_edge_values() -> None:
    assert parse_rule({**LEAF, "reason": "A-b.c:d_9"}).to_json()["reason"] == "A-b.c:d_9"
    assert parse_rule({"attr": "_" + "a" * 63, "op": "exists"})
    assert parse_rule({"attr": "a.b.c_1", "op": "exists"})
    assert parse_rule(cmp("between", [1.5, 1.5]))
    assert parse_rule(cmp("in", [1, "a", True, 2.5]))
    assert check(cmp("<", 10**400), {"a": 1e300})
    assert parse_rule({"all": (LEAF,)}) == parse_rule({"all": [LEAF]})


def nested_not(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = LEAF
    for _ in range(depth - 1):
        data = {"not": data}
    return data


def test_depth_limit() -> None:
    assert parse_rule(nested_not(MAX_DEPTH)).evaluate({}) is (
        (MAX_DEPTH - 1) % 2 == 1
    )  # 15 nots over a false leaf
    with pytest.raises(RuleError, match="deeper than 16") as info:
        parse_rule(nested_not(MAX_DEPTH + 1))
    assert info.value.path == "rule" + ".not" * MAX_DEPTH
    with pytest.raises(RuleError, match="deeper"):
        parse_rule(nested_not(10_000))


def test_node_limit() -> None:
    assert parse_rule({"all": [LEAF] * (MAX_NODES - 1)})
    with pytest.raises(RuleError, match="at most 256 nodes") as info:
        parse_rule({"all": [LEAF] * MAX_NODES})
    assert info.value.path == f"rule.all[{MAX_NODES - 1}]"
    with pytest.raises(RuleError, match="at most 256 nodes"):
        parse_rule({"any": [{"all": [LEAF] * 100}] * 3})
    with pytest.raises(RuleError, match="at most 256 nodes"):
        parse_rule({"all": [LEAF] * 1_000_000})


def test_dataclasses_check_at_construction() -> None:
    leaf = Comparison("a", "exists")
    assert Comparison("a", "in", ["x"]).value == ("x",)  # type: ignore[arg-type]
    with pytest.raises(RuleError):
        Comparison("a", "in", ())
    with pytest.raises(RuleError):
        Comparison("a", "==", math.nan)
    with pytest.raises(RuleError):
        Comparison("a", "~", 1)  # type: ignore[arg-type]
    with pytest.raises(RuleError):
        AllOf(())
    with pytest.raises(RuleError):
        AnyOf((leaf, "x"))  # type: ignore[arg-type]
    with pytest.raises(RuleError):
        Not(leaf, reason="no spaces")
    with pytest.raises(RuleError):
        Not({"attr": "a"})  # type: ignore[arg-type]


def test_rules_are_frozen_and_hashable() -> None:
    rule = parse_rule({"all": [cmp("in", ["a", "b"]), {"not": LEAF}], "reason": "R"})
    assert isinstance(rule, AllOf)
    assert hash(rule) == hash(parse_rule(rule.to_json()))
    with pytest.raises(AttributeError):
        rule.reason = "S"  # type: ignore[misc]


# --- properties -------------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c.d"])
REASONS = st.one_of(st.none(), st.sampled_from(["R1", "R2", "R3"]))
NUMBERS = st.one_of(
    st.integers(-3, 3), st.sampled_from([-0.0, 0.5, 1.0, 2.0, 1e300, -2.5]), st.just(10**20)
)
STRINGS = st.sampled_from(["", "a", "b", "x", "1"])
SCALARS = st.one_of(st.booleans(), NUMBERS, STRINGS)


def with_reason(draw: st.DrawFn, data: dict[str, Any]) -> dict[str, Any]:
    reason = draw(REASONS)
    if reason is not None:
        data["reason"] = reason
    return data


@st.composite
def comparisons(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(sorted(OPS)))
    data: dict[str, Any] = {"attr": draw(NAMES), "op": op}
    if op in {"==", "!=", "contains", "not_contains"}:
        data["value"] = draw(SCALARS)
    elif op in {"<", "<=", ">", ">="}:
        data["value"] = draw(st.one_of(NUMBERS, STRINGS))
    elif op in {"in", "not_in"}:
        data["value"] = draw(st.lists(SCALARS, min_size=1, max_size=4))
    elif op == "between":
        data["value"] = sorted(draw(st.lists(NUMBERS, min_size=2, max_size=2)))
    return with_reason(draw, data)


@st.composite
def booleans_of(draw: st.DrawFn, children: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    kind = draw(st.sampled_from(["all", "any", "not"]))
    if kind == "not":
        return with_reason(draw, {"not": draw(children)})
    return with_reason(draw, {kind: draw(st.lists(children, min_size=1, max_size=4))})


RULE_JSON = st.recursive(comparisons(), booleans_of, max_leaves=12)
RULES = RULE_JSON.map(parse_rule)

ATTRIBUTE_VALUES = st.one_of(
    st.none(),
    SCALARS,
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.lists(st.one_of(SCALARS, st.just(Weird())), max_size=4),
    st.lists(SCALARS, max_size=3).map(tuple),
    st.frozensets(SCALARS, max_size=3),
    st.dictionaries(STRINGS, SCALARS, max_size=2),
    st.just(object()),
)
ATTRIBUTES = st.dictionaries(NAMES, ATTRIBUTE_VALUES, max_size=3)


@settings(max_examples=500)
@given(RULES, ATTRIBUTES)
def test_compiled_agrees_with_evaluate(rule: Rule, attributes: dict[str, Any]) -> None:
    verdict = rule.evaluate(attributes)
    assert isinstance(verdict, bool)
    failed = compile_rule(rule)(attributes)
    assert (failed is None) is verdict
    assert failed == reference_reason(rule, attributes)


@given(RULE_JSON)
def test_to_json_round_trips(data: dict[str, Any]) -> None:
    rule = parse_rule(data)
    assert rule.to_json() == data
    assert parse_rule(rule.to_json()) == rule
    # == on dataclasses treats 1, 1.0 and True alike; JSON text does not
    assert json.dumps(parse_rule(rule.to_json()).to_json()) == json.dumps(data)


@given(st.lists(RULE_JSON, min_size=1, max_size=4), ATTRIBUTES)
def test_de_morgan(children: list[dict[str, Any]], attributes: dict[str, Any]) -> None:
    pairs = [
        ({"not": {"all": children}}, {"any": [{"not": c} for c in children]}),
        ({"not": {"any": children}}, {"all": [{"not": c} for c in children]}),
    ]
    for left, right in pairs:
        assert check(left, attributes) is check(right, attributes)


@given(comparisons(), ATTRIBUTES)
def test_negated_operators_are_exact_negations(
    data: dict[str, Any], attributes: dict[str, Any]
) -> None:
    twins = {"==": "!=", "in": "not_in", "contains": "not_contains", "exists": "not_exists"}
    twins |= {v: k for k, v in twins.items()}
    if data["op"] not in twins:
        return
    twin = {**data, "op": twins[data["op"]]}
    assert check(data, attributes) is not check(twin, attributes)


JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=30,
)
GRAMMAR_KEYS = st.sampled_from(["all", "any", "not", "attr", "op", "value", "reason", "x"])
RULE_ISH = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.sampled_from(sorted(OPS)),
        st.sampled_from(["a", "c.d", "R1", "bad name", ""]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(GRAMMAR_KEYS, inner, max_size=4)
    ),
    max_leaves=25,
)


def parse_or_rule_error(data: object) -> None:
    try:
        rule = parse_rule(data)
    except RuleError as exc:
        assert exc.path.startswith("rule")
        assert str(exc).startswith(exc.path)
    else:
        assert parse_rule(rule.to_json()) == rule
        compile_rule(rule)({})


@settings(max_examples=300)
@given(JSON)
def test_parse_raises_only_rule_error_on_arbitrary_json(data: object) -> None:
    parse_or_rule_error(data)


@settings(max_examples=500)
@given(RULE_ISH)
def test_parse_raises_only_rule_error_on_rule_like_json(data: object) -> None:
    parse_or_rule_error(data)
