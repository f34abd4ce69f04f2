"""Declarative eligibility rules: parsed and validated once when saved, compiled to closures.

Grammar (JSON)::

    {"all": [rule, ...]}   {"any": [rule, ...]}   {"not": rule}
    {"attr": NAME, "op": OP, "value": V}

``OP`` is one of ``==  !=  <  <=  >  >=  in  not_in  between  contains  not_contains  exists
not_exists``. Any rule may carry ``"reason": "CODE"``, reported when that rule excludes an offer.

Semantics
---------
* Attributes are looked up by their full ``NAME`` in a flat mapping; a dot is part of the name
  (``"address.country"`` is one key), there is no nested traversal.
* Values are typed: a *number* is an ``int`` or ``float`` but never a ``bool`` (``True != 1``),
  a *string* is a ``str``, a *list* (for ``contains``) is a list, tuple, set or frozenset.
* The positive operators (``==``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``between``,
  ``contains``, ``exists``) are True only when the attribute is present, not None, of the right
  type and satisfies the test. A missing attribute, a None and a type mismatch make them False;
  nothing raises.
* Each negated operator is exactly ``not`` of its positive twin: ``!=`` is ``not ==``,
  ``not_in`` is ``not in``, ``not_contains`` is ``not contains``, ``not_exists`` is
  ``not exists``. So a missing attribute, a None or a type mismatch makes them **True**
  (``{"attr": "segment", "op": "!=", "value": "private"}`` passes a customer without a segment).
  Write ``{"all": [{"attr": A, "op": "exists"}, {"attr": A, "op": "!=", ...}]}`` to require it.

Reason codes (``compile_rule``): a failing rule is traced down to its innermost failing rule,
following the first failing child of an ``all``, the first child of a failed ``any`` (all of them
failed) and stopping at a ``not`` (its child passed). The code reported is the reason of the
deepest rule on that path that has one, else ``RULE_FAILED``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, cast, get_args

__all__ = [
    "DEFAULT_REASON",
    "MAX_DEPTH",
    "MAX_NODES",
    "AllOf",
    "AnyOf",
    "Comparison",
    "Not",
    "Op",
    "Rule",
    "RuleCheck",
    "RuleError",
    "Scalar",
    "compile_rule",
    "parse_rule",
]

Op: TypeAlias = Literal[
    "==", "!=", "<", "<=", ">", ">=", "in", "not_in", "between",
    "contains", "not_contains", "exists", "not_exists",
]  # fmt: skip
Scalar: TypeAlias = bool | int | float | str
Value: TypeAlias = Scalar | tuple[Scalar, ...] | None
RuleCheck: TypeAlias = Callable[[Mapping[str, Any]], str | None]

DEFAULT_REASON: Final = "RULE_FAILED"
MAX_DEPTH: Final = 16
MAX_NODES: Final = 256

OPS: Final[frozenset[str]] = frozenset(get_args(Op))
_EQUALITY_OPS: Final = frozenset({"==", "!="})
_ORDER_OPS: Final = frozenset({"<", "<=", ">", ">="})
_SET_OPS: Final = frozenset({"in", "not_in"})
_CONTAINS_OPS: Final = frozenset({"contains", "not_contains"})
_EXISTS_OPS: Final = frozenset({"exists", "not_exists"})
_NEGATED: Final[dict[str, str]] = {
    "!=": "==", "not_in": "in", "not_contains": "contains", "not_exists": "exists",
}  # fmt: skip

_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")
_REASON_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_KEY_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BOOLEAN_KEYS: Final = ("all", "any", "not")
_COMPARISON_KEYS: Final = frozenset({"attr", "op", "value", "reason"})
_NUM: Final = (int, float)
_COLLECTION: Final = (list, tuple, set, frozenset)


class RuleError(ValueError):
    """An invalid rule; ``path`` is the JSON path of the offending part, e.g. ``rule.all[1].op``."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(f"{path}: {message}")
        self.message = message
        self.path = path


# --- value kinds: the only place that says what a number, a string and a list are --------------


def _is_num(x: object) -> bool:
    """A finite-or-not ``int``/``float`` that is not a ``bool``."""
    return isinstance(x, _NUM) and x is not True and x is not False


def _same(x: object, v: Scalar) -> bool:
    """Typed equality: ``x`` equals the rule value ``v`` and is of the same kind."""
    if v is True or v is False:
        return x is v
    if isinstance(v, str):
        return isinstance(x, str) and x == v
    return _is_num(x) and x == v


def _compare(op: str, x: object, value: Value) -> bool:
    """``x OP value`` under the module's semantics (the reference interpreter)."""
    if op in _NEGATED:
        return not _compare(_NEGATED[op], x, value)
    if x is None:
        return False
    if op == "exists":
        return True
    if op == "==":
        assert not isinstance(value, tuple) and value is not None
        return _same(x, value)
    if op == "in":
        assert isinstance(value, tuple)
        return any(_same(x, v) for v in value)
    if op == "contains":
        assert not isinstance(value, tuple) and value is not None
        return isinstance(x, _COLLECTION) and any(_same(e, value) for e in x)
    if op == "between":
        assert isinstance(value, tuple)
        low, high = value
        return _is_num(x) and low <= x <= high  # type: ignore[operator]
    # ordering: a number against a number, a string against a string
    if isinstance(value, str):
        if not isinstance(x, str):
            return False
    elif not _is_num(x):
        return False
    if op == "<":
        return x < value  # type: ignore[operator]
    if op == "<=":
        return x <= value  # type: ignore[operator]
    if op == ">":
        return x > value  # type: ignore[operator]
    return x >= value  # type: ignore[operator]


# --- validation, shared by parse_rule (with JSON paths) and the dataclasses ---------------------


def _key_path(path: str, key: object) -> str:
    if isinstance(key, str) and _KEY_RE.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{key!r}]"


def _check_reason(reason: object, path: str) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str) or not _REASON_RE.fullmatch(reason):
        raise RuleError("must be a string of 1-64 characters from A-Z a-z 0-9 _ . : -", path=path)
    return reason


def _check_scalar(v: object, path: str, *, bools: bool = True, strings: bool = True) -> Scalar:
    kinds = "a number" + (", a string" if strings else "") + (" or a bool" if bools else "")
    if v is True or v is False:
        if bools:
            return v
    elif isinstance(v, str):
        if strings:
            return v
    elif isinstance(v, _NUM):
        if isinstance(v, float) and not math.isfinite(v):
            raise RuleError("must be a finite number, not NaN or infinity", path=path)
        return v
    raise RuleError(f"must be {kinds}, got {type(v).__name__}", path=path)


def _check_list(v: object, path: str, *, length: int | None = None) -> list[Any] | tuple[Any, ...]:
    if not isinstance(v, list | tuple):
        raise RuleError(f"must be a list, got {type(v).__name__}", path=path)
    if length is not None and len(v) != length:
        raise RuleError(f"must be a list of {length} items, got {len(v)}", path=path)
    if not v:
        raise RuleError("must be a non-empty list", path=path)
    return v


def _check_comparison(attr: object, op: object, value: object, path: str) -> tuple[str, Op, Value]:
    """Validate one comparison; return it normalised (lists become tuples)."""
    if not isinstance(attr, str):
        raise RuleError(f"must be a string, got {type(attr).__name__}", path=f"{path}.attr")
    if not _NAME_RE.fullmatch(attr):
        raise RuleError(
            "must match [A-Za-z_][A-Za-z0-9_.]{0,63} (1-64 characters)", path=f"{path}.attr"
        )
    if op is None:
        raise RuleError("is required", path=f"{path}.op")
    if not isinstance(op, str) or op not in OPS:
        raise RuleError(f"must be one of {', '.join(get_args(Op))}", path=f"{path}.op")
    vpath = f"{path}.value"
    checked: Value
    if op in _EXISTS_OPS:
        if value is not None:
            raise RuleError(f"is not allowed with op {op!r}", path=vpath)
        checked = None
    elif value is None:
        raise RuleError(f"is required with op {op!r}", path=vpath)
    elif op in _EQUALITY_OPS or op in _CONTAINS_OPS:
        checked = _check_scalar(value, vpath)
    elif op in _ORDER_OPS:
        checked = _check_scalar(value, vpath, bools=False)
    elif op in _SET_OPS:
        items = _check_list(value, vpath)
        checked = tuple(_check_scalar(v, f"{vpath}[{i}]") for i, v in enumerate(items))
    else:  # between
        items = _check_list(value, vpath, length=2)
        low, high = (
            _check_scalar(v, f"{vpath}[{i}]", bools=False, strings=False)
            for i, v in enumerate(items)
        )
        if low > high:  # type: ignore[operator]
            raise RuleError(f"low ({low}) must not exceed high ({high})", path=vpath)
        checked = (low, high)
    return attr, op, checked  # type: ignore[return-value]


# --- the rule tree ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """Base of the rule tree; use ``parse_rule`` to build one from JSON."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form; ``parse_rule(r.to_json()) == r``."""
        raise NotImplementedError

    def evaluate(self, attributes: Mapping[str, Any]) -> bool:
        """True when ``attributes`` pass the rule (a plain interpreter; see ``compile_rule``)."""
        raise NotImplementedError


def _with_reason(body: dict[str, Any], reason: str | None) -> dict[str, Any]:
    if reason is not None:
        body["reason"] = reason
    return body


def _check_children(rules: object, name: str) -> tuple[Rule, ...]:
    if not isinstance(rules, tuple) or not rules:
        raise RuleError("must be a non-empty tuple of rules", path=name)
    for i, r in enumerate(rules):
        if not isinstance(r, Rule):
            raise RuleError(f"must be a Rule, got {type(r).__name__}", path=f"{name}[{i}]")
    return rules


@dataclass(frozen=True, slots=True)
class AllOf(Rule):
    """Passes when every child passes (``{"all": [...]}``)."""

    rules: tuple[Rule, ...]
    reason: str | None = None

    def __post_init__(self) -> None:
        _check_children(self.rules, "all")
        _check_reason(self.reason, "reason")

    def to_json(self) -> dict[str, Any]:
        return _with_reason({"all": [r.to_json() for r in self.rules]}, self.reason)

    def evaluate(self, attributes: Mapping[str, Any]) -> bool:
        return all(r.evaluate(attributes) for r in self.rules)


@dataclass(frozen=True, slots=True)
class AnyOf(Rule):
    """Passes when at least one child passes (``{"any": [...]}``)."""

    rules: tuple[Rule, ...]
    reason: str | None = None

    def __post_init__(self) -> None:
        _check_children(self.rules, "any")
        _check_reason(self.reason, "reason")

    def to_json(self) -> dict[str, Any]:
        return _with_reason({"any": [r.to_json() for r in self.rules]}, self.reason)

    def evaluate(self, attributes: Mapping[str, Any]) -> bool:
        return any(r.evaluate(attributes) for r in self.rules)


@dataclass(frozen=True, slots=True)
class Not(Rule):
    """Passes when its child fails (``{"not": rule}``)."""

    rule: Rule
    reason: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.rule, Rule):
            raise RuleError(f"must be a Rule, got {type(self.rule).__name__}", path="not")
        _check_reason(self.reason, "reason")

    def to_json(self) -> dict[str, Any]:
        return _with_reason({"not": self.rule.to_json()}, self.reason)

    def evaluate(self, attributes: Mapping[str, Any]) -> bool:
        return not self.rule.evaluate(attributes)


@dataclass(frozen=True, slots=True)
class Comparison(Rule):
    """``attributes[attr] OP value``; ``value`` is a tuple for ``in``/``not_in``/``between``
    and None for ``exists``/``not_exists``."""

    attr: str
    op: Op
    value: Value = None
    reason: str | None = None

    def __post_init__(self) -> None:
        _, _, value = _check_comparison(self.attr, self.op, self.value, "comparison")
        object.__setattr__(self, "value", value)
        _check_reason(self.reason, "reason")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"attr": self.attr, "op": self.op}
        if isinstance(self.value, tuple):
            body["value"] = list(self.value)
        elif self.value is not None:
            body["value"] = self.value
        return _with_reason(body, self.reason)

    def evaluate(self, attributes: Mapping[str, Any]) -> bool:
        return _compare(self.op, attributes.get(self.attr), self.value)


# --- parsing ----------------------------------------------------------------------------------


class _Parser:
    """One parse: counts nodes across the whole tree."""

    def __init__(self) -> None:
        self.nodes = 0

    def parse(self, data: object, path: str, depth: int) -> Rule:
        if depth > MAX_DEPTH:
            raise RuleError(f"rules may not nest deeper than {MAX_DEPTH} levels", path=path)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise RuleError(f"a rule may have at most {MAX_NODES} nodes", path=path)
        if not isinstance(data, Mapping):
            raise RuleError(f"must be an object, got {type(data).__name__}", path=path)
        kinds = [k for k in (*_BOOLEAN_KEYS, "attr") if k in data]
        if len(kinds) != 1:
            raise RuleError(
                "must have exactly one of the keys all, any, not, attr"
                + (f" (found {', '.join(kinds)})" if kinds else ""),
                path=path,
            )
        kind = kinds[0]
        allowed = _COMPARISON_KEYS if kind == "attr" else {kind, "reason"}
        for key in data:
            if key not in allowed:
                raise RuleError(f"unknown key {key!r}", path=_key_path(path, key))
        reason = _check_reason(data.get("reason"), f"{path}.reason")
        if "reason" in data and reason is None:
            raise RuleError("must be a string, got null", path=f"{path}.reason")
        if kind == "attr":
            attr, op, value = _check_comparison(
                data["attr"], data.get("op"), data.get("value"), path
            )
            if "value" in data and value is None:  # an explicit null with exists/not_exists
                raise RuleError(f"is not allowed with op {op!r}", path=f"{path}.value")
            return Comparison(attr, op, value, reason)
        child_path = f"{path}.{kind}"
        if kind == "not":
            return Not(self.parse(data["not"], child_path, depth + 1), reason)
        items = data[kind]
        if not isinstance(items, list | tuple):
            raise RuleError(f"must be a list of rules, got {type(items).__name__}", path=child_path)
        if not items:
            raise RuleError("must be a non-empty list of rules", path=child_path)
        children = tuple(
            self.parse(item, f"{child_path}[{i}]", depth + 1) for i, item in enumerate(items)
        )
        return AllOf(children, reason) if kind == "all" else AnyOf(children, reason)


def parse_rule(data: object, *, path: str = "rule") -> Rule:
    """Validate JSON ``data`` (as from ``json.loads``) into a ``Rule``.

    Raises ``RuleError`` (and nothing else) naming the offending part as a JSON path under
    ``path``, e.g. ``eligibility.all[1].value``.
    """
    return _Parser().parse(data, path, 1)


# --- compilation ------------------------------------------------------------------------------


def compile_rule(rule: Rule) -> RuleCheck:
    """A closure returning None when attributes pass ``rule``, else the failing reason code.

    Agrees with ``rule.evaluate`` on pass/fail; reason codes follow the module docstring.
    Evaluation does no regex work and allocates no dicts: every branch is decided here.
    """
    return _compile(rule, DEFAULT_REASON)


def _compile(rule: Rule, inherited: str) -> RuleCheck:
    reason = getattr(rule, "reason", None) or inherited
    if isinstance(rule, AllOf | AnyOf):
        checks = tuple(_compile(r, reason) for r in rule.rules)
        if len(checks) == 1:
            return checks[0]
        return _compile_all(checks) if isinstance(rule, AllOf) else _compile_any(checks)
    if isinstance(rule, Not):
        inner = _compile(rule.rule, reason)

        def not_(a: Mapping[str, Any]) -> str | None:
            return reason if inner(a) is None else None

        return not_
    if isinstance(rule, Comparison):
        return _compile_comparison(rule, reason)
    raise TypeError(f"not a rule: {type(rule).__name__}")


def _compile_all(checks: tuple[RuleCheck, ...]) -> RuleCheck:
    if len(checks) == 2:
        first, second = checks

        def all2(a: Mapping[str, Any]) -> str | None:
            return first(a) or second(a)  # reasons are non-empty strings

        return all2

    def all_(a: Mapping[str, Any]) -> str | None:
        for check in checks:
            failed = check(a)
            if failed is not None:
                return failed
        return None

    return all_


def _compile_any(checks: tuple[RuleCheck, ...]) -> RuleCheck:
    first, rest = checks[0], checks[1:]

    def any_(a: Mapping[str, Any]) -> str | None:
        failed = first(a)
        if failed is None:
            return None
        for check in rest:
            if check(a) is None:
                return None
        return failed

    return any_


def _compile_comparison(rule: Comparison, reason: str) -> RuleCheck:
    """A positive test ``(x) -> bool`` for the operator, then wrap it with the reason."""
    name, op, v = rule.attr, rule.op, rule.value
    negate = op in _NEGATED
    test = _positive_test(_NEGATED.get(op, op), v)
    if test is None:  # exists / not_exists
        if negate:

            def not_exists(a: Mapping[str, Any]) -> str | None:
                return None if a.get(name) is None else reason

            return not_exists

        def exists(a: Mapping[str, Any]) -> str | None:
            return reason if a.get(name) is None else None

        return exists
    if negate:

        def negated(a: Mapping[str, Any]) -> str | None:
            return reason if test(a.get(name)) else None

        return negated

    def positive(a: Mapping[str, Any]) -> str | None:
        return None if test(a.get(name)) else reason

    return positive


def _positive_test(op: str, v: Value) -> Callable[[Any], bool] | None:
    """The test for a positive operator on the looked-up attribute ``x`` (None = missing)."""
    if op == "exists":
        return None
    if op == "between":
        low, high = cast(tuple[float, float], v)
        return lambda x: (
            isinstance(x, _NUM) and x is not True and x is not False and low <= x <= high
        )
    if op == "in":
        assert isinstance(v, tuple)
        return _in_test(v)
    if op == "contains":
        assert isinstance(v, bool | int | float | str)
        return _contains_test(v)
    if v is True or v is False:  # ==
        return lambda x: x is v
    if isinstance(v, str):
        if op == "==":
            return lambda x: isinstance(x, str) and x == v
        if op == "<":
            return lambda x: isinstance(x, str) and x < v
        if op == "<=":
            return lambda x: isinstance(x, str) and x <= v
        if op == ">":
            return lambda x: isinstance(x, str) and x > v
        return lambda x: isinstance(x, str) and x >= v
    assert isinstance(v, int | float)
    n: float = v
    if op == "==":
        return lambda x: isinstance(x, _NUM) and x is not True and x is not False and x == n
    if op == "<":
        return lambda x: isinstance(x, _NUM) and x is not True and x is not False and x < n
    if op == "<=":
        return lambda x: isinstance(x, _NUM) and x is not True and x is not False and x <= n
    if op == ">":
        return lambda x: isinstance(x, _NUM) and x is not True and x is not False and x > n
    return lambda x: isinstance(x, _NUM) and x is not True and x is not False and x >= n


def _in_test(values: tuple[Scalar, ...]) -> Callable[[Any], bool]:
    """Membership by kind: one frozenset per kind, so ``True`` never matches ``1``."""
    strs = frozenset(v for v in values if isinstance(v, str))
    bools = frozenset(v for v in values if v is True or v is False)
    nums = frozenset(v for v in values if _is_num(v))
    if not bools and not nums:
        return lambda x: isinstance(x, str) and x in strs
    if not bools and not strs:
        return lambda x: isinstance(x, _NUM) and x is not True and x is not False and x in nums

    def in_(x: Any) -> bool:
        if isinstance(x, str):
            return x in strs
        if x is True or x is False:
            return x in bools
        return isinstance(x, _NUM) and x in nums

    return in_


def _contains_test(v: Scalar) -> Callable[[Any], bool]:
    """``v`` is an element of the collection ``x``: a fast ``in``, confirmed by kind on a hit."""

    def contains(x: Any) -> bool:
        if not isinstance(x, _COLLECTION):
            return False
        try:
            if v not in x:
                return False
        except Exception:  # an element whose __eq__ misbehaves: fall back to the exact scan
            pass
        return any(_same(e, v) for e in x)

    return contains
