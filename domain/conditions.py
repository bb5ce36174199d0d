"""IAM policy ``Condition`` blocks, compiled once into closures and evaluated per request.

A ``Condition`` element maps operators to ``{condition key: value(s)}``. Every (operator, key)
pair is one test; the tests of a block are ANDed, and the values listed for one key are ORed
[KDG:conditions-kms "implicitly connected by an AND" / "by a OR"].

The request context a block is evaluated against is a ``Mapping[str, Any]`` keyed by the
LOWER-CASE condition key name (``"kms:encryptionalgorithm"``, ``"kms:encryptioncontext:app"``,
``"aws:principaltag/team"``); condition key names are case-insensitive [IAM:reference_policies_
variables "Key names are case-insensitive"; KDG:conditions-kms for the ``kms:EncryptionContext:``
key part]. Values are ``str``, ``list[str]`` / ``tuple`` (multi-valued keys), ``bool``,
``int``/``float`` or ``datetime``; ``None`` or an empty list means the key is absent. A compiled
block calls ``context.get(key)`` only for the keys it names (and the variables it uses), so the
context may compute values lazily.

Operators [IAM:reference_policies_elements_condition_operators]:

* String: ``StringEquals``, ``StringNotEquals``, ``StringEqualsIgnoreCase``,
  ``StringNotEqualsIgnoreCase``, ``StringLike``, ``StringNotLike`` (``*`` and ``?`` wildcards).
* Numeric: ``NumericEquals``, ``NumericNotEquals``, ``NumericLessThan``,
  ``NumericLessThanEquals``, ``NumericGreaterThan``, ``NumericGreaterThanEquals``.
* Date: the same six with ``Date``; values are W3C ISO 8601 or epoch seconds, no wildcards.
* ``Bool``; ``BinaryEquals`` (base64 in the policy); ``IpAddress`` / ``NotIpAddress`` (CIDR,
  IPv4 or IPv6, a bare address is a /32 or /128).
* ARN: ``ArnEquals`` = ``ArnLike``, ``ArnNotEquals`` = ``ArnNotLike``; each of the six
  colon-delimited components is matched separately and may hold wildcards.
* ``Null``: ``true`` means the key is absent, ``false`` that it is present.
* ``…IfExists`` on every operator but ``Null``: a missing key makes the test true.
* ``ForAllValues:`` / ``ForAnyValue:`` set qualifiers: ForAllValues is true when every request
  value matches (and when there are none); ForAnyValue when at least one does (false when there
  are none) [IAM:reference_policies_multi-value-conditions].
* A missing key makes a test false, except that negated operators (``StringNotEquals``,
  ``StringNotLike``, ``NumericNotEquals``, ``DateNotEquals``, ``NotIpAddress``,
  ``ArnNotEquals``/``ArnNotLike``) are then true.
* Policy variables (``${aws:username}``, ``${aws:PrincipalTag/x}``, ``${aws:userid}``, any key
  of the context, with an optional default ``${key, 'default'}``) and the fixed ``${*}``,
  ``${?}``, ``${$}`` are replaced in String, ARN and Bool values when the policy's Version is
  2012-10-17 [IAM:reference_policies_variables]. A variable the context cannot resolve (and
  that has no default) makes that one policy value match nothing.

Choices / messages not confirmed against AWS
--------------------------------------------
* Operator names and their ``ForAllValues:``/``ForAnyValue:`` qualifiers are matched
  case-insensitively.
* A policy value of the wrong type for its operator is rejected when the policy is parsed
  (MalformedPolicyDocumentException): a non-numeric Numeric value, an unparseable Date, a Bool
  other than true/false, invalid base64 for BinaryEquals, an invalid CIDR, a Null value other
  than true/false, an object or nested list. Messages:
  ``Condition operator <Op> has an invalid value for <key>: <value>.``,
  ``Condition operator <Op> is not supported.``, ``Condition operator <Op> must map condition
  keys to values.``, ``Null cannot be combined with IfExists or a set operator: <Op>.``
* ``ForAllValues`` with ``kms:EncryptionContext:<k>`` is rejected with the KDG text
  ``OverlyPermissiveCondition:EncryptionContext: …``; with ``aws:RequestTag/<k>`` the generic
  KDG text with "tag" in the brackets:
  ``OverlyPermissiveCondition: Using the ForAllValues set operator with a single-valued
  condition key matches requests without the specified tag or with an unspecified tag. To fix,
  remove ForAllValues.`` Only key policies are checked (``overly_permissive_check=True``);
  identity policies are IAM's to validate.
* A multi-valued request value (a list) under an operator without a set qualifier matches when
  any of its values matches (a negated operator: when none does).
* ARN operators: a policy value with fewer than six colon-separated components is matched as a
  whole-string wildcard pattern; the sixth component (the resource) may contain colons.
* Dates: a value without a time zone is UTC; a string of digits (with an optional fraction) is
  epoch seconds, except exactly four digits, which is a year (W3C ``YYYY``).
* A value substituted for a policy variable is literal text in the Like/ARN operators (its
  ``*`` and ``?`` are not wildcards).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from domain.errors import MalformedPolicyDocumentException

Context = Mapping[str, Any]
Test = Callable[[Context], bool]
#: one request value against the policy values of one test
ValueMatcher = Callable[[Any, Context], bool]

OVERLY_PERMISSIVE_ENCRYPTION_CONTEXT = (
    "OverlyPermissiveCondition:EncryptionContext: Using the ForAllValues set operator with a "
    "single-valued condition key matches requests without the specified encryption context or "
    "with an unspecified encryption context. To fix, remove ForAllValues."
)
OVERLY_PERMISSIVE_TAG = (
    "OverlyPermissiveCondition: Using the ForAllValues set operator with a single-valued "
    "condition key matches requests without the specified tag or with an unspecified tag. "
    "To fix, remove ForAllValues."
)


def _malformed(message: str) -> MalformedPolicyDocumentException:
    return MalformedPolicyDocumentException(message)


# -- policy values with variables ---------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"^\s*([^,]+?)\s*,\s*'(.*)'\s*$", re.DOTALL)
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


@dataclass(frozen=True, slots=True)
class _Var:
    key: str  # lower-case context key
    default: str | None


@dataclass(frozen=True, slots=True)
class _Char:
    """``${*}``, ``${?}``, ``${$}``: a literal character, never a wildcard."""

    char: str


Segment = str | _Var | _Char  # a str segment is policy text whose * and ? are wildcards


def parse_template(value: str, variables: bool) -> tuple[Segment, ...]:
    """Split a policy value into literal text, fixed characters and variables."""
    if not variables or "${" not in value:
        return (value,)
    segments: list[Segment] = []
    position = 0
    for match in _VARIABLE.finditer(value):
        if match.start() > position:
            segments.append(value[position : match.start()])
        inner = match.group(1)
        if inner in _SPECIAL:
            segments.append(_Char(_SPECIAL[inner]))
        else:
            default = _DEFAULT.match(inner)
            if default:
                segments.append(_Var(default.group(1).lower(), default.group(2)))
            else:
                segments.append(_Var(inner.strip().lower(), None))
        position = match.end()
    if position < len(value):
        segments.append(value[position:])
    return tuple(segments)


def is_static(segments: tuple[Segment, ...]) -> bool:
    return not any(isinstance(s, _Var) for s in segments)


def literal_text(segments: tuple[Segment, ...]) -> str:
    """The text of a value without variables (``${*}`` becomes ``*``)."""
    return "".join(s if isinstance(s, str) else s.char for s in segments)  # type: ignore[union-attr]


def context_string(value: Any) -> str | None:
    """A context value as the string the String operators compare (None: not a string)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return None


def _resolve_var(var: _Var, context: Context) -> str | None:
    value = context.get(var.key)
    if isinstance(value, list | tuple | set | frozenset):
        value = None  # a multi-valued key cannot stand in for one string
    text = context_string(value)
    if text is None:
        return var.default
    return text


def resolve_literal(segments: tuple[Segment, ...], context: Context) -> str | None:
    """The value with its variables replaced (None: a variable did not resolve)."""
    parts: list[str] = []
    for segment in segments:
        if isinstance(segment, str):
            parts.append(segment)
        elif isinstance(segment, _Char):
            parts.append(segment.char)
        else:
            text = _resolve_var(segment, context)
            if text is None:
                return None
            parts.append(text)
    return "".join(parts)


def wildcard_regex(text: str, component: bool = False) -> str:
    """Regex source for policy text: ``*`` any run of characters, ``?`` any one character.

    ``component``: the wildcards stay inside one colon-delimited ARN component.
    """
    star, one = ("[^:]*", "[^:]") if component else (".*", ".")
    out: list[str] = []
    for char in text:
        if char == "*":
            out.append(star)
        elif char == "?":
            out.append(one)
        else:
            out.append(re.escape(char))
    return "".join(out)


def _segments_regex(segments: tuple[Segment, ...], context: Context | None,
                    component: bool = False) -> str | None:
    parts: list[str] = []
    for segment in segments:
        if isinstance(segment, str):
            parts.append(wildcard_regex(segment, component))
        elif isinstance(segment, _Char):
            parts.append(re.escape(segment.char))
        else:
            text = _resolve_var(segment, context) if context is not None else None
            if text is None:
                return None
            parts.append(re.escape(text))
    return "".join(parts)


@lru_cache(maxsize=2048)
def _compiled(source: str, flags: int = re.DOTALL) -> re.Pattern[str]:
    return re.compile(source, flags)


def like_pattern(segments: tuple[Segment, ...], context: Context | None) -> re.Pattern[str] | None:
    """A compiled whole-string wildcard pattern (None: a variable did not resolve)."""
    source = _segments_regex(segments, context)
    return None if source is None else _compiled(source)


def _split_segments(segments: tuple[Segment, ...], limit: int) -> list[tuple[Segment, ...]]:
    """Split a template on ':' in its policy text (at most ``limit`` splits)."""
    components: list[list[Segment]] = [[]]
    for segment in segments:
        if isinstance(segment, str):
            pieces = segment.split(":", max(limit - (len(components) - 1), 0))
            components[-1].append(pieces[0])
            for piece in pieces[1:]:
                components.append([piece])
        else:
            components[-1].append(segment)
    return [tuple(c) for c in components]


def arn_pattern(segments: tuple[Segment, ...], context: Context | None) -> re.Pattern[str] | None:
    """ArnLike: six components matched separately; fewer than six: a whole-string pattern."""
    components = _split_segments(segments, 5)
    if len(components) < 6:
        return like_pattern(segments, context)
    parts: list[str] = []
    for index, component in enumerate(components):
        source = _segments_regex(component, context, component=index < 5)
        if source is None:
            return None
        parts.append(source)
    return _compiled(":".join(parts))


# -- value conversions ----------------------------------------------------------------------------

_ISO = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?)?)?)?$"
)
_EPOCH = re.compile(r"^[+-]?\d+(?:\.\d*)?$")


def parse_date(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 (W3C) date, an epoch number, or a datetime."""
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _EPOCH.match(text) and not re.fullmatch(r"\d{4}", text):
        return float(text)
    match = _ISO.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
            int(second or 0), tzinfo=UTC,
        )
    except ValueError:
        return None
    stamp = moment.timestamp()
    if fraction:
        stamp += float("0." + fraction)
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
        if hours > 23 or minutes > 59:
            return None
        stamp -= sign * (hours * 3600 + minutes * 60)
    return stamp


def parse_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def parse_bool(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower()
    return None


def _context_bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def _context_ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value.strip())
        except ValueError:
            return None
    return None


# -- operators --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Operator:
    family: str  # string | numeric | date | bool | binary | ip | arn | null
    flavor: str  # eq | ieq | like | lt | le | gt | ge | ""
    negated: bool = False


_OPERATORS: dict[str, _Operator] = {
    "stringequals": _Operator("string", "eq"),
    "stringnotequals": _Operator("string", "eq", True),
    "stringequalsignorecase": _Operator("string", "ieq"),
    "stringnotequalsignorecase": _Operator("string", "ieq", True),
    "stringlike": _Operator("string", "like"),
    "stringnotlike": _Operator("string", "like", True),
    "numericequals": _Operator("numeric", "eq"),
    "numericnotequals": _Operator("numeric", "eq", True),
    "numericlessthan": _Operator("numeric", "lt"),
    "numericlessthanequals": _Operator("numeric", "le"),
    "numericgreaterthan": _Operator("numeric", "gt"),
    "numericgreaterthanequals": _Operator("numeric", "ge"),
    "dateequals": _Operator("date", "eq"),
    "datenotequals": _Operator("date", "eq", True),
    "datelessthan": _Operator("date", "lt"),
    "datelessthanequals": _Operator("date", "le"),
    "dategreaterthan": _Operator("date", "gt"),
    "dategreaterthanequals": _Operator("date", "ge"),
    "bool": _Operator("bool", "eq"),
    "binaryequals": _Operator("binary", "eq"),
    "ipaddress": _Operator("ip", ""),
    "notipaddress": _Operator("ip", "", True),
    "arnequals": _Operator("arn", ""),
    "arnlike": _Operator("arn", ""),
    "arnnotequals": _Operator("arn", "", True),
    "arnnotlike": _Operator("arn", "", True),
    "null": _Operator("null", ""),
}

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "eq": lambda a, b: a == b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}

ALL_VALUES = "ForAllValues"
ANY_VALUE = "ForAnyValue"


def _policy_values(operator: str, key: str, raw: Any) -> list[Any]:
    values = raw if isinstance(raw, list) else [raw]
    for value in values:
        if value is None or isinstance(value, dict | list):
            raise _malformed(f"Condition operator {operator} has an invalid value for {key}: "
                             f"{value!r}.")
    return values


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _string_matcher(op: _Operator, operator: str, key: str, values: list[Any],
                    variables: bool) -> ValueMatcher:
    templates = [parse_template(_as_text(v), variables) for v in values]
    static = [t for t in templates if is_static(t)]
    dynamic = tuple(t for t in templates if not is_static(t))

    if op.flavor == "eq":
        literals = frozenset(literal_text(t) for t in static)

        def match_eq(value: Any, context: Context) -> bool:
            text = value if type(value) is str else context_string(value)
            if text is None:
                return False
            if text in literals:
                return True
            for template in dynamic:
                if resolve_literal(template, context) == text:
                    return True
            return False

        return match_eq

    if op.flavor == "ieq":
        folded = frozenset(literal_text(t).lower() for t in static)

        def match_ieq(value: Any, context: Context) -> bool:
            text = context_string(value)
            if text is None:
                return False
            text = text.lower()
            if text in folded:
                return True
            for template in dynamic:
                resolved = resolve_literal(template, context)
                if resolved is not None and resolved.lower() == text:
                    return True
            return False

        return match_ieq

    # like
    sources = [_segments_regex(t, None) for t in static]
    combined = (
        re.compile("|".join(f"(?:{s})" for s in sources), re.DOTALL) if sources else None
    )

    def match_like(value: Any, context: Context) -> bool:
        text = context_string(value)
        if text is None:
            return False
        if combined is not None and combined.fullmatch(text):
            return True
        for template in dynamic:
            pattern = like_pattern(template, context)
            if pattern is not None and pattern.fullmatch(text):
                return True
        return False

    return match_like


def _arn_matcher(values: list[Any], variables: bool) -> ValueMatcher:
    templates = [parse_template(_as_text(v), variables) for v in values]
    static = [arn_pattern(t, None) for t in templates if is_static(t)]
    dynamic = tuple(t for t in templates if not is_static(t))

    def match_arn(value: Any, context: Context) -> bool:
        text = context_string(value)
        if text is None:
            return False
        for pattern in static:
            if pattern is not None and pattern.fullmatch(text):
                return True
        for template in dynamic:
            pattern = arn_pattern(template, context)
            if pattern is not None and pattern.fullmatch(text):
                return True
        return False

    return match_arn


def _number_matcher(op: _Operator, operator: str, key: str, values: list[Any],
                    parse: Callable[[Any], float | None]) -> ValueMatcher:
    numbers: list[float] = []
    for value in values:
        number = parse(value)
        if number is None:
            raise _malformed(
                f"Condition operator {operator} has an invalid value for {key}: {value!r}."
            )
        numbers.append(number)
    compare = _COMPARE[op.flavor]
    if op.flavor == "eq":
        wanted = frozenset(numbers)

        def match_equal(value: Any, context: Context) -> bool:
            number = parse(value)
            return number is not None and number in wanted

        return match_equal

    def match_compare(value: Any, context: Context) -> bool:
        number = parse(value)
        if number is None:
            return False
        return any(compare(number, limit) for limit in numbers)

    return match_compare


def _bool_matcher(operator: str, key: str, values: list[Any], variables: bool) -> ValueMatcher:
    wanted: set[str] = set()
    dynamic: list[tuple[Segment, ...]] = []
    for value in values:
        if isinstance(value, str) and variables and "${" in value:
            template = parse_template(value, True)
            if not is_static(template):
                dynamic.append(template)
                continue
            value = literal_text(template)
        parsed = parse_bool(value)
        if parsed is None:
            raise _malformed(
                f"Condition operator {operator} has an invalid value for {key}: {value!r}."
            )
        wanted.add(parsed)
    frozen = frozenset(wanted)

    def match_bool(value: Any, context: Context) -> bool:
        text = parse_bool(value)
        if text is None:
            return False
        if text in frozen:
            return True
        for template in dynamic:
            resolved = resolve_literal(template, context)
            if resolved is not None and resolved.strip().lower() == text:
                return True
        return False

    return match_bool


def _binary_matcher(operator: str, key: str, values: list[Any]) -> ValueMatcher:
    wanted: set[bytes] = set()
    for value in values:
        try:
            if not isinstance(value, str):
                raise ValueError
            wanted.add(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise _malformed(
                f"Condition operator {operator} has an invalid value for {key}: {value!r}."
            ) from None
    frozen = frozenset(wanted)

    def match_binary(value: Any, context: Context) -> bool:
        data = _context_bytes(value)
        return data is not None and data in frozen

    return match_binary


def _ip_matcher(operator: str, key: str, values: list[Any]) -> ValueMatcher:
    networks = []
    for value in values:
        try:
            if not isinstance(value, str):
                raise ValueError
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise _malformed(
                f"Condition operator {operator} has an invalid value for {key}: {value!r}."
            ) from None
    frozen = tuple(networks)

    def match_ip(value: Any, context: Context) -> bool:
        address = _context_ip(value)
        if address is None:
            return False
        return any(address.version == n.version and address in n for n in frozen)

    return match_ip


_MULTI = (list, tuple, set, frozenset)


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, _MULTI) and not value)


def _make_test(key: str, matcher: ValueMatcher, negated: bool, qualifier: str | None,
               if_exists: bool) -> Test:
    """One (operator, key) test. A request value that is a list is multi-valued; None or an
    empty list means the key is absent."""
    missing = if_exists or negated  # the answer when the key is absent (no qualifier)

    if qualifier is None:
        if negated:

            def test_negated(context: Context) -> bool:
                value = context.get(key)
                if value is None:
                    return True
                if isinstance(value, _MULTI):
                    for item in value:
                        if matcher(item, context):
                            return False
                    return True
                return not matcher(value, context)

            return test_negated

        def test(context: Context) -> bool:
            value = context.get(key)
            if value is None:
                return missing
            if isinstance(value, _MULTI):
                for item in value:
                    if matcher(item, context):
                        return True
                return False if value else missing
            return matcher(value, context)

        return test

    if qualifier == ALL_VALUES:

        def test_all(context: Context) -> bool:
            value = context.get(key)
            if value is None:
                return True
            if isinstance(value, _MULTI):
                for item in value:
                    if matcher(item, context) == negated:
                        return False
                return True
            return matcher(value, context) != negated

        return test_all

    def test_any(context: Context) -> bool:
        value = context.get(key)
        if value is None:
            return if_exists
        if isinstance(value, _MULTI):
            for item in value:
                if matcher(item, context) != negated:
                    return True
            return False if value else if_exists
        return matcher(value, context) != negated

    return test_any


def _null_test(operator: str, key_name: str, key: str, values: list[Any]) -> Test:
    wanted: set[bool] = set()
    for value in values:
        parsed = parse_bool(value)
        if parsed is None:
            raise _malformed(
                f"Condition operator {operator} has an invalid value for {key_name}: {value!r}."
            )
        wanted.add(parsed == "true")
    if not wanted:
        return lambda context: False
    if wanted == {True, False}:
        return lambda context: True
    want_absent = wanted == {True}

    def test_null(context: Context) -> bool:
        return _absent(context.get(key)) == want_absent

    return test_null


def split_operator(name: str) -> tuple[str | None, _Operator, bool]:
    """``ForAnyValue:StringLikeIfExists`` -> (qualifier, operator, if_exists)."""
    if not isinstance(name, str):
        raise _malformed(f"Condition operator {name!r} is not supported.")
    qualifier: str | None = None
    base = name
    if ":" in name:
        prefix, base = name.split(":", 1)
        lowered = prefix.lower()
        if lowered == "forallvalues":
            qualifier = ALL_VALUES
        elif lowered == "foranyvalue":
            qualifier = ANY_VALUE
        else:
            raise _malformed(f"Condition operator {name} is not supported.")
    lowered = base.lower()
    if_exists = False
    operator = _OPERATORS.get(lowered)
    if operator is None and lowered.endswith("ifexists"):
        operator = _OPERATORS.get(lowered[: -len("ifexists")])
        if_exists = True
    if operator is None:
        raise _malformed(f"Condition operator {name} is not supported.")
    if operator.family == "null" and (if_exists or qualifier):
        raise _malformed(f"Null cannot be combined with IfExists or a set operator: {name}.")
    return qualifier, operator, if_exists


class Condition:
    """A compiled ``Condition`` element: true when every one of its tests is.

    ``evaluate(context)`` is the fastest way to call it (the one test itself when there is
    only one)."""

    __slots__ = ("tests", "keys", "evaluate")

    def __init__(self, tests: tuple[Test, ...], keys: frozenset[str]) -> None:
        self.tests = tests
        #: the lower-case context keys its tests read (variables excluded)
        self.keys = keys
        if len(tests) == 1:
            self.evaluate: Test = tests[0]
        else:

            def evaluate(context: Context) -> bool:
                for test in tests:
                    if not test(context):
                        return False
                return True

            self.evaluate = evaluate

    def __call__(self, context: Context) -> bool:
        return self.evaluate(context)

    def __repr__(self) -> str:
        return f"Condition(keys={sorted(self.keys)})"


def compile_condition(block: Any, *, variables: bool = True,
                      overly_permissive_check: bool = False) -> Condition | None:
    """Compile a ``Condition`` element (None when it has no tests).

    ``variables``: the policy's Version supports policy variables (2012-10-17).
    ``overly_permissive_check``: reject ForAllValues with kms:EncryptionContext:<k> or
    aws:RequestTag/<k>, as KMS does for key policies.
    """
    if not isinstance(block, dict):
        raise _malformed("The Condition element must be a JSON object.")
    tests: list[Test] = []
    keys: set[str] = set()
    for operator_name, entries in block.items():
        qualifier, operator, if_exists = split_operator(operator_name)
        if not isinstance(entries, dict):
            raise _malformed(f"Condition operator {operator_name} must map condition keys to "
                             f"values.")
        for key_name, raw in entries.items():
            if not isinstance(key_name, str) or not key_name.strip():
                raise _malformed(f"Condition operator {operator_name} has an empty condition key.")
            key = key_name.strip().lower()
            if overly_permissive_check and qualifier == ALL_VALUES:
                if key.startswith("kms:encryptioncontext:"):
                    raise _malformed(OVERLY_PERMISSIVE_ENCRYPTION_CONTEXT)
                if key.startswith("aws:requesttag/"):
                    raise _malformed(OVERLY_PERMISSIVE_TAG)
            values = _policy_values(operator_name, key_name, raw)
            keys.add(key)
            if operator.family == "null":
                tests.append(_null_test(operator_name, key_name, key, values))
                continue
            matcher: ValueMatcher
            if operator.family == "string":
                matcher = _string_matcher(operator, operator_name, key_name, values, variables)
            elif operator.family == "arn":
                matcher = _arn_matcher(values, variables)
            elif operator.family == "numeric":
                matcher = _number_matcher(operator, operator_name, key_name, values, parse_number)
            elif operator.family == "date":
                matcher = _number_matcher(operator, operator_name, key_name, values, parse_date)
            elif operator.family == "bool":
                matcher = _bool_matcher(operator_name, key_name, values, variables)
            elif operator.family == "binary":
                matcher = _binary_matcher(operator_name, key_name, values)
            else:
                matcher = _ip_matcher(operator_name, key_name, values)
            tests.append(_make_test(key, matcher, operator.negated, qualifier, if_exists))
    if not tests:
        return None
    return Condition(tuple(tests), frozenset(keys))
