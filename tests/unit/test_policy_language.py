"""The IAM policy language: parsing, validation messages, and every condition operator family.

Expected values come from AWS's documentation: [IAM:ops] is
IAM User Guide reference_policies_elements_condition_operators, [IAM:vars]
reference_policies_variables, [IAM:multi] reference_policies_multi-value-conditions, [KDG:x] the
KMS Developer Guide page x. Messages marked "(keyledger)" are keyledger's own choices, listed in
the docstrings of domain/policy.py and domain/conditions.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from domain import errors
from domain.conditions import compile_condition, parse_date
from domain.policy import (
    DEFAULT_POLICY_NAME,
    INVALID_PRINCIPALS,
    Policy,
    PrincipalMatch,
    default_key_policy,
    validate_key_policy,
)
from domain.principals import Principal, PrincipalKind

ACCT = "111122223333"
OTHER = "444455556666"
ALICE = Principal(ACCT, PrincipalKind.USER, name="alice", unique_id="AIDAALICE000000000001")
ROOT = Principal.root(ACCT)
SESSION = Principal(ACCT, PrincipalKind.ASSUMED_ROLE, name="ExampleRole", session_name="s1",
                    unique_id="AROAEXAMPLEROLE000001")


def key_policy(*statements: dict, version: str | None = "2012-10-17") -> str:
    doc: dict = {"Statement": list(statements)}
    if version is not None:
        doc = {"Version": version, **doc}
    return json.dumps(doc)


def allow(**extra) -> dict:
    return {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCT}:root"},
            "Action": "kms:*", "Resource": "*", **extra}


def malformed(text: str, *, kind: str = "key", exists=None) -> str:
    with pytest.raises(errors.MalformedPolicyDocumentException) as caught:
        Policy.parse(text, kind=kind, principal_exists=exists)
    return caught.value.message


def cond(block: dict, context: dict, *, variables: bool = True) -> bool:
    compiled = compile_condition(block, variables=variables)
    assert compiled is not None
    return compiled(context)


# -- the default key policy ------------------------------------------------------------------------


def test_default_key_policy_is_awss_document():
    # facts brief §4: GetKeyPolicy's output for the default policy, byte for byte in its layout
    assert DEFAULT_POLICY_NAME == "default"
    assert default_key_policy(ACCT) == (
        '{\n  "Version" : "2012-10-17",\n  "Id" : "key-default-1",\n  "Statement" : [ {\n'
        '    "Sid" : "Enable IAM User Permissions",\n    "Effect" : "Allow",\n'
        '    "Principal" : {\n      "AWS" : "arn:aws:iam::111122223333:root"\n    },\n'
        '    "Action" : "kms:*",\n    "Resource" : "*"\n  } ]\n}'
    )
    policy = Policy.parse(default_key_policy(ACCT))
    assert policy.id == "key-default-1" and len(policy.statements) == 1
    assert validate_key_policy(default_key_policy(ACCT)) == default_key_policy(ACCT)


# -- structure ---------------------------------------------------------------------------------------


def test_statement_may_be_a_single_object():
    policy = Policy.parse(json.dumps({"Version": "2012-10-17", "Statement": allow(Sid="one")}))
    assert [s.sid for s in policy.statements] == ["one"]


def test_key_policy_sid_may_contain_spaces():
    # KDG:key-policy-overview "The Sid element in a key policy statement can include spaces"
    Policy.parse(key_policy(allow(Sid="Enable IAM User Permissions")))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The new key policy will not allow you to update the key policy in the future."),
        ("   ", "The new key policy will not allow you to update the key policy in the future."),
        ("{not json", "The policy document is not valid JSON."),
        ('{"Statement": NaN}', "The policy document is not valid JSON."),
        # nested deeper than Python's JSON parser can recurse (about 1,000 levels): 2 KB
        ('{"Statement":' + "[" * 5000 + "]" * 5000 + "}", "The policy document is not valid JSON."),
        ("{" + '"a":{' * 5000 + "}" * 5001, "The policy document is not valid JSON."),
        ("[]", "The policy document must be a JSON object."),
        ('"text"', "The policy document must be a JSON object."),
        ("{}", "Policy contains no statements."),
        ('{"Statement": []}', "Policy contains no statements."),
        ('{"Statement": "x"}', "Policy contains no statements."),
        ('{"Statement": ["x"]}', "Policy statement must be a JSON object."),
        ('{"Statement": [{"Action": "kms:*"}]}',
         "Policy statement has an invalid or missing Effect."),
        (key_policy(allow(Effect="allow")), "Policy statement has an invalid or missing Effect."),
        ('{"Version": "2012-10-17", "Version": "2012-10-17", "Statement": []}',
         "The policy document has a duplicate element: Version."),
        ('{"Version": "2012-10-17", "Statemnt": []}',
         "The policy document has an unsupported element: Statemnt."),
        (key_policy(allow(), version="2013-01-01"),
         "The policy document has an unsupported Version: 2013-01-01."),
        ('{"Id": 7, "Statement": []}', "The policy Id must be a string."),
        (key_policy(allow(Sid=3)), "Policy statement Sid must be a string."),
        (key_policy(allow(Sid="a"), allow(Sid="a")), "Policy contains duplicate statement ids: a."),
        (key_policy(allow(Actions="kms:*")), "Policy statement has an unsupported element: Actions."),
        (key_policy({"Effect": "Allow", "Principal": "*", "Resource": "*"}),
         "Policy statement is missing an Action."),
        (key_policy(allow(NotAction="kms:Decrypt")),
         "Policy statement must have either Action or NotAction, not both."),
        (key_policy(allow(Action=[])), "Policy statement has an invalid action: []."),
        (key_policy(allow(Action="Encrypt")), "Policy statement has an invalid action: Encrypt."),
        (key_policy(allow(Action="kms:")), "Policy statement has an invalid action: kms:."),
        (key_policy(allow(Action="k*s:Encrypt")),
         "Policy statement has an invalid action: k*s:Encrypt."),
        (key_policy(allow(NotResource="*")),
         "Policy statement must have either Resource or NotResource, not both."),
        (key_policy(allow(Resource="key/1")), "Policy statement has an invalid resource: key/1."),
        (key_policy(allow(Resource=["*", 3])), "Policy statement has an invalid resource: 3."),
    ],
)
def test_malformed_documents(text, message):
    # (keyledger) texts, except the lockout text kept for an empty document
    assert malformed(text) == message


def test_duplicate_members_are_found_at_any_depth():
    text = ('{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "1", "AWS": "2"},'
            ' "Action": "kms:*", "Resource": "*"}]}')
    assert malformed(text) == "The policy document has a duplicate element: AWS."


def test_missing_version_is_accepted_without_variables():
    # IAM:vars: without a Version that supports variables, ${aws:username} is literal text
    policy = Policy.parse(key_policy(allow(Condition={"StringEquals": {
        "kms:EncryptionContext:user": "${aws:username}"}}), version=None))
    condition = policy.statements[0].condition
    assert condition({"kms:encryptioncontext:user": "${aws:username}", "aws:username": "bob"})
    assert not condition({"kms:encryptioncontext:user": "bob", "aws:username": "bob"})


def test_2008_version_keeps_variables_literal():
    policy = Policy.parse(key_policy(allow(Condition={"StringEquals": {
        "kms:EncryptionContext:user": "${aws:username}"}}), version="2008-10-17"))
    assert not policy.statements[0].condition({"kms:encryptioncontext:user": "bob",
                                                "aws:username": "bob"})


def test_key_policy_statement_without_resource_is_accepted_and_has_no_effect():
    # KDG:key-policy-overview: missing Resource -> "the policy statement has no effect", and
    # CreateKey/PutKeyPolicy succeed
    policy = Policy.parse(key_policy({"Effect": "Allow", "Principal": "*", "Action": "kms:*"}))
    assert policy.statements[0].resources is None


def test_identity_policy_rules():
    statement = {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}
    Policy.parse(json.dumps({"Version": "2012-10-17", "Statement": [statement]}), kind="identity")
    assert malformed(json.dumps({"Statement": [{**statement, "Principal": "*"}]}),
                     kind="identity") == (
        "Identity policies cannot have a Principal or NotPrincipal element.")
    assert malformed(json.dumps({"Statement": [{"Effect": "Allow", "Action": "kms:*"}]}),
                     kind="identity") == "Policy statement is missing a Resource."


def test_identity_policy_from_document():
    policy = Policy.from_document({"Version": "2012-10-17", "Statement": [
        {"Sid": "x", "Effect": "Allow", "Action": "kms:*", "Resource": "*"}]})
    assert policy.kind == "identity" and policy.statements[0].sid == "x"


def test_size_limit():
    # KDG:key-policy-overview "Up to 32 kilobytes (32,768 bytes)"; MODEL: LimitExceededException
    base = key_policy(allow(Sid="x"))
    exact = base.replace('"x"', '"' + "x" * (32768 - len(base) + 1) + '"')
    assert len(exact.encode()) == 32768
    Policy.parse(exact)
    with pytest.raises(errors.LimitExceededException) as caught:
        Policy.parse(exact.replace('"x', '"xx'))
    assert caught.value.message == "The key policy exceeds the maximum size of 32768 bytes."
    # the limit is the key policy's; an identity policy of that size is IAM's business
    Policy.parse(exact.replace('"x', '"xx').replace('"Principal": {"AWS": "arn:aws:iam::'
                                                    '111122223333:root"}, ', ""), kind="identity")


def test_key_policy_characters():
    # KDG:key-policy-overview: printable ASCII, Latin-1 supplement, tab, LF, CR
    Policy.parse(key_policy(allow(Sid="café\té")).replace("\\u00e9", "é"))
    assert malformed(key_policy(allow(Sid="x")).replace('"x"', '"\u20ac"')) == (
        "The key policy contains a character that is not allowed: U+20AC.")


# -- principals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "principal",
    [
        "*",
        {"AWS": "*"},
        {"AWS": ACCT},
        {"AWS": f"arn:aws:iam::{ACCT}:root"},
        {"AWS": f"arn:aws:iam::{ACCT}:user/alice"},
        {"AWS": f"arn:aws:iam::{ACCT}:user/division/team/alice"},
        {"AWS": f"arn:aws:iam::{ACCT}:role/ExampleRole"},
        {"AWS": f"arn:aws:sts::{ACCT}:assumed-role/ExampleRole/s1"},
        {"AWS": f"arn:aws:sts::{ACCT}:federated-user/carol"},
        {"AWS": "AIDACKCEVSQ6C2EXAMPLE"},
        {"AWS": [f"arn:aws:iam::{ACCT}:root", OTHER]},
        {"Service": "dynamodb.us-west-2.amazonaws.com"},
        {"AWS": ACCT, "Service": ["ec2.amazonaws.com", "rds.amazonaws.com"]},
    ],
)
def test_valid_principal_forms(principal):
    # IAM:reference_policies_elements_principal; facts brief §6.3 and §7
    Policy.parse(key_policy({"Effect": "Allow", "Principal": principal, "Action": "kms:*",
                             "Resource": "*"}))


@pytest.mark.parametrize(
    "principal",
    [
        None,
        "alice",
        {},
        {"AWS": []},
        {"AWS": ""},
        {"AWS": 123456789012},
        {"AWS": f"arn:aws:iam::{ACCT}:user/*"},  # no partial wildcards
        {"AWS": f"arn:aws:sts::{ACCT}:assumed-role/ExampleRole/*"},  # no "all sessions"
        {"AWS": "arn:aws:iam::*:root"},
        {"AWS": "1111*"},
        {"AWS": f"arn:aws:iam::{ACCT}:group/Admins"},  # groups are not principals
        {"AWS": "12345"},
        {"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"},
        {"Federated": "cognito-identity.amazonaws.com"},
        {"aws": ACCT},
        {"Service": "*"},
    ],
)
def test_invalid_principals(principal):
    statement = {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}
    if principal is not None:
        statement["Principal"] = principal
    assert malformed(key_policy(statement)) == INVALID_PRINCIPALS
    assert INVALID_PRINCIPALS == "Policy contains a statement with one or more invalid principals."


def test_principal_and_not_principal_together_are_invalid():
    assert malformed(key_policy(allow(NotPrincipal={"AWS": OTHER}))) == INVALID_PRINCIPALS


def test_principal_exists_is_asked_about_every_principal_but_accounts_and_star():
    asked = []

    def exists(arn: str) -> bool:
        asked.append(arn)
        return "ghost" not in arn

    principals = ["*", ACCT, f"arn:aws:iam::{OTHER}:root", f"arn:aws:iam::{ACCT}:user/alice",
                  f"arn:aws:iam::{ACCT}:role/R", f"arn:aws:sts::{ACCT}:assumed-role/R/s",
                  "AIDACKCEVSQ6C2EXAMPLE"]
    Policy.parse(key_policy(allow(Principal={"AWS": principals})), principal_exists=exists)
    assert asked == principals[3:]
    # facts brief §4: a principal that does not exist (or an orphaned unique id)
    for ghost in (f"arn:aws:iam::{ACCT}:user/ghost", f"arn:aws:iam::{ACCT}:role/ghost"):
        assert malformed(key_policy(allow(Principal={"AWS": ghost})), exists=exists) == (
            INVALID_PRINCIPALS)


def test_principal_matching():
    def match(principal_element, who):
        policy = Policy.parse(key_policy({"Effect": "Allow", "Principal": principal_element,
                                          "Action": "kms:*", "Resource": "*"}))
        return policy.statements[0].principals.match(who)

    assert match("*", ROOT) is PrincipalMatch.DIRECT
    assert match({"AWS": ACCT}, ROOT) is PrincipalMatch.ACCOUNT
    assert match({"AWS": ACCT}, ALICE) is PrincipalMatch.ACCOUNT
    assert match({"AWS": OTHER}, ALICE) is PrincipalMatch.NONE
    assert match({"AWS": f"arn:aws:iam::{ACCT}:user/alice"}, ALICE) is PrincipalMatch.DIRECT
    # IAM:reference_policies_elements_principal: the user name is case-sensitive
    assert match({"AWS": f"arn:aws:iam::{ACCT}:user/Alice"}, ALICE) is PrincipalMatch.NONE
    # a role ARN matches every session; a session ARN one exact session
    assert match({"AWS": f"arn:aws:iam::{ACCT}:role/ExampleRole"}, SESSION) is PrincipalMatch.DIRECT
    assert match({"AWS": f"arn:aws:sts::{ACCT}:assumed-role/ExampleRole/s1"}, SESSION) is (
        PrincipalMatch.DIRECT)
    assert match({"AWS": f"arn:aws:sts::{ACCT}:assumed-role/ExampleRole/s2"}, SESSION) is (
        PrincipalMatch.NONE)
    # a unique id stored for an existing principal still matches it
    assert match({"AWS": "AIDAALICE000000000001"}, ALICE) is PrincipalMatch.DIRECT
    # services never match an IAM caller
    assert match({"Service": "ec2.amazonaws.com"}, ROOT) is PrincipalMatch.NONE


def test_not_principal_excepts_a_caller_only_with_each_of_its_identities_named():
    """IAM:reference_policies_elements_notprincipal: AWS may check the account, then the user
    or role, then the role's session; a Deny with NotPrincipal applies to the first not named."""
    def denied(named: list[str], who) -> bool:
        policy = Policy.parse(key_policy({"Effect": "Deny", "NotPrincipal": {"AWS": named},
                                          "Action": "kms:*", "Resource": "*"}))
        return policy.statements[0].principals.match(who) is PrincipalMatch.DIRECT

    account = f"arn:aws:iam::{ACCT}:root"
    role = f"arn:aws:iam::{ACCT}:role/ExampleRole"
    session = f"arn:aws:sts::{ACCT}:assumed-role/ExampleRole/s1"
    alice = f"arn:aws:iam::{ACCT}:user/alice"
    assert not denied([account], ROOT)
    assert denied([f"arn:aws:iam::{OTHER}:root"], ROOT)
    assert not denied([alice, account], ALICE)
    assert not denied(["AIDAALICE000000000001", ACCT], ALICE)  # (a unique id names the user)
    assert denied([alice], ALICE)  # the account is not named
    assert denied([account], ALICE)  # nor the user
    assert not denied([session, role, account], SESSION)  # the IAM guide's example
    assert not denied([session, "AROAEXAMPLEROLE000001", ACCT], SESSION)
    assert denied([role, account], SESSION)  # not this session
    assert denied([session, account], SESSION)  # not its role
    assert denied([session, role], SESSION)  # not its account
    assert denied([f"arn:aws:sts::{ACCT}:assumed-role/ExampleRole/s2", role, account], SESSION)


# -- actions and resources ---------------------------------------------------------------------------


def test_action_wildcards_and_case():
    # KDG:key-policy-default: kms:Create* covers CreateAlias and CreateGrant; kms:ReEncrypt*
    # covers ReEncryptFrom and ReEncryptTo; IAM matches action names case-insensitively
    policy = Policy.parse(key_policy(allow(Action=["kms:Create*", "kms:ReEncrypt*",
                                                    "KMS:describekey", "kms:Get?eyPolicy"])))
    actions = policy.statements[0].actions
    for action in ("kms:createalias", "kms:creategrant", "kms:reencryptfrom", "kms:reencryptto",
                   "kms:describekey", "kms:getkeypolicy"):
        assert actions(action)
    for action in ("kms:encrypt", "kms:getpublickey", "s3:createbucket", "kms:re-encrypt"):
        assert not actions(action)
    not_action = Policy.parse(key_policy({"Effect": "Allow", "Principal": "*",
                                          "NotAction": "kms:Decrypt", "Resource": "*"}))
    assert not not_action.statements[0].actions("kms:decrypt")
    assert not_action.statements[0].actions("kms:encrypt")


def test_applicable_is_case_insensitive_and_cached():
    policy = Policy.parse(key_policy(allow(Sid="a"), {"Sid": "d", "Effect": "Deny",
                                                      "Principal": "*", "Action": "kms:Dec*",
                                                      "Resource": "*"}))
    denies, allows = policy.applicable("kms:Decrypt")
    assert [s.sid for s in denies] == ["d"] and [s.sid for s in allows] == ["a"]
    assert policy.applicable("KMS:DECRYPT")[0] == denies
    assert policy.applicable("kms:Decrypt") is policy.applicable("kms:Decrypt")


def test_resource_patterns():
    policy = Policy.parse(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:*",
         "Resource": ["arn:aws:kms:*:111122223333:key/*", "arn:aws:kms:us-east-1:444455556666:alias/ex?"]},
        {"Effect": "Allow", "Action": "kms:*", "NotResource": "arn:aws:kms:*:*:key/secret"},
        {"Effect": "Allow", "Action": "kms:*",
         "Resource": "arn:aws:kms:us-east-1:111122223333:alias/${aws:username}-*"},
    ]}), kind="identity")
    first, second, third = policy.statements
    assert first.resources("arn:aws:kms:us-west-2:111122223333:key/1234", {})
    assert first.resources("arn:aws:kms:us-east-1:444455556666:alias/ex1", {})
    assert not first.resources("arn:aws:kms:us-east-1:444455556666:alias/ex12", {})
    assert not first.resources("arn:aws:kms:us-west-2:444455556666:key/1234", {})
    assert not first.resources("*", {})  # an IAM-only operation's resource is "*"
    assert not second.resources("arn:aws:kms:us-east-1:1:key/secret", {})
    assert second.resources("arn:aws:kms:us-east-1:1:key/public", {})
    # IAM:vars: variables in the resource part of the ARN
    assert third.resources.uses_context and not first.resources.uses_context
    arn = "arn:aws:kms:us-east-1:111122223333:alias/alice-app"
    assert third.resources(arn, {"aws:username": "alice"})
    assert not third.resources(arn, {"aws:username": "bob"})
    assert not third.resources(arn, {})  # unresolved variable: no match


# -- condition operators: String -----------------------------------------------------------------------


def test_string_equals_is_case_sensitive_and_values_are_ored():
    block = {"StringEquals": {"kms:EncryptionContext:Stage": ["Restricted", "Production"]}}
    assert cond(block, {"kms:encryptioncontext:stage": "Production"})
    assert not cond(block, {"kms:encryptioncontext:stage": "production"})
    assert not cond(block, {"kms:encryptioncontext:stage": "Test"})
    assert not cond(block, {})  # IAM:ops: a missing key does not match


def test_multiple_keys_are_anded():
    # KDG:conditions-kms "implicitly connected by an AND operator"
    block = {"StringEquals": {"kms:EncryptionContext:Department": "IT",
                              "kms:EncryptionContext:Project": "Alpha"}}
    both = {"kms:encryptioncontext:department": "IT", "kms:encryptioncontext:project": "Alpha"}
    assert cond(block, both)
    assert not cond(block, {"kms:encryptioncontext:department": "IT"})
    assert cond(block | {"Bool": {"aws:SecureTransport": "true"}},
                both | {"aws:securetransport": True})
    assert not cond(block | {"Bool": {"aws:SecureTransport": "true"}},
                    both | {"aws:securetransport": False})


def test_condition_key_names_are_case_insensitive():
    # KDG:conditions-kms "the condition key … is not case sensitive"
    assert cond({"StringEquals": {"KMS:ENCRYPTIONCONTEXT:APPNAME": "ExampleApp"}},
                {"kms:encryptioncontext:appname": "ExampleApp"})


@pytest.mark.parametrize(
    ("operator", "value", "request_value", "expected"),
    [
        ("StringNotEquals", "RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", True),
        ("StringNotEquals", "RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_256", False),
        ("StringNotEquals", "RSAES_OAEP_SHA_256", None, True),  # negated: true on missing key
        ("StringEqualsIgnoreCase", "exampleapp", "ExampleApp", True),
        ("StringEqualsIgnoreCase", "exampleapp", "Other", False),
        ("StringEqualsIgnoreCase", "exampleapp", None, False),
        ("StringNotEqualsIgnoreCase", "exampleapp", "EXAMPLEAPP", False),
        ("StringNotEqualsIgnoreCase", "exampleapp", "other", True),
        ("StringNotEqualsIgnoreCase", "exampleapp", None, True),
        ("StringLike", "RSA*", "RSA_2048", True),
        ("StringLike", "RSA*", "ECC_NIST_P256", False),
        ("StringLike", "RSASSA_PSS*", "RSASSA_PSS_SHA_512", True),
        ("StringLike", "alias/*test*", "alias/my-test-key", True),
        ("StringLike", "alias/*test*", "alias/my-Test-key", False),  # case-sensitive
        ("StringLike", "us-?ast-1", "us-east-1", True),
        ("StringLike", "us-?ast-1", "us-eeast-1", False),
        ("StringLike", "RSA*", None, False),
        ("StringNotLike", "RSA*", "RSA_2048", False),
        ("StringNotLike", "RSA*", "HMAC_256", True),
        ("StringNotLike", "RSA*", None, True),  # IAM:ops: StringNotLike true on a missing key
        ("StringEquals", True, "true", True),  # JSON booleans compare as text
        ("StringEquals", 111122223333, "111122223333", True),  # numbers as text
        ("StringEquals", "true", True, True),  # a boolean context value as text
    ],
)
def test_string_operators(operator, value, request_value, expected):
    context = {} if request_value is None else {"k:key": request_value}
    assert cond({operator: {"k:key": value}}, context) is expected


def test_multi_valued_request_value_without_set_operator_matches_any():
    assert cond({"StringEquals": {"kms:ResourceAliases": "alias/a"}},
                {"kms:resourcealiases": ["alias/b", "alias/a"]})
    assert not cond({"StringNotEquals": {"kms:ResourceAliases": "alias/a"}},
                    {"kms:resourcealiases": ["alias/b", "alias/a"]})


# -- Numeric, Date, Bool, Binary, IP, ARN, Null ----------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "request_value", "expected"),
    [
        # KDG:conditions-kms kms:ValidTo: NumericLessThanEquals "1546257599.0"
        ("NumericLessThanEquals", "1546257599.0", 1546257599, True),
        ("NumericLessThanEquals", "1546257599.0", 1546257600, False),
        ("NumericLessThanEquals", "1546257599.0", "1546257000", True),
        ("NumericLessThan", 10, 9.5, True),
        ("NumericLessThan", 10, 10, False),
        ("NumericGreaterThan", "7", 8, True),
        ("NumericGreaterThan", "7", 7, False),
        ("NumericGreaterThanEquals", "7", 7, True),
        ("NumericEquals", ["7", "30"], 30, True),
        ("NumericEquals", "7", 8, False),
        ("NumericEquals", "7", None, False),
        ("NumericEquals", "7", "seven", False),
        ("NumericNotEquals", "7", 8, True),
        ("NumericNotEquals", "7", 7, False),
        ("NumericNotEquals", "7", None, True),
    ],
)
def test_numeric_operators(operator, value, request_value, expected):
    context = {} if request_value is None else {"kms:validto": request_value}
    assert cond({operator: {"kms:ValidTo": value}}, context) is expected


NOON = datetime(2020, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("operator", "value", "request_value", "expected"),
    [
        # IAM:ops DateGreaterThan aws:TokenIssueTime "2020-01-01T00:00:01Z"
        ("DateGreaterThan", "2020-01-01T00:00:01Z", NOON, True),
        ("DateGreaterThan", "2020-01-01T00:00:01Z", datetime(2019, 12, 31, tzinfo=UTC), False),
        ("DateGreaterThan", "2020-01-01T00:00:01Z", None, False),
        ("DateLessThan", "2020-06-01T13:00:00+01:00", NOON, False),  # that is 12:00 UTC
        ("DateLessThanEquals", "2020-06-01T13:00:00+01:00", NOON, True),
        ("DateEquals", "2020-06-01T12:00:00Z", NOON, True),
        ("DateEquals", str(int(NOON.timestamp())), NOON, True),  # epoch in the policy
        ("DateEquals", int(NOON.timestamp()), NOON.isoformat(), True),
        ("DateNotEquals", "2020-06-01T12:00:00Z", NOON, False),
        ("DateNotEquals", "2020-06-01T12:00:00Z", None, True),
        ("DateGreaterThanEquals", "2020-06-01", NOON, True),
        ("DateLessThan", "2021", NOON, True),  # W3C YYYY
        ("DateLessThan", "2020-06", NOON, False),  # W3C YYYY-MM
        ("DateLessThan", "2020-06-01T12:00:00.5Z", NOON, True),
        ("DateLessThan", "2020-06-01T12:00Z", int(NOON.timestamp()) - 1, True),  # epoch context
    ],
)
def test_date_operators(operator, value, request_value, expected):
    context = {} if request_value is None else {"aws:currenttime": request_value}
    assert cond({operator: {"aws:CurrentTime": value}}, context) is expected


def test_parse_date_forms():
    assert parse_date("2020-06-01T12:00:00Z") == NOON.timestamp()
    assert parse_date("2020-06-01T14:00:00+02:00") == NOON.timestamp()
    assert parse_date("2020-06-01T07:00:00-0500") == NOON.timestamp()
    assert parse_date(datetime(2020, 6, 1, 12)) == NOON.timestamp()  # naive is UTC
    assert parse_date("yesterday") is None
    assert parse_date("2020-13-01") is None


@pytest.mark.parametrize(
    ("value", "request_value", "expected"),
    [
        (True, True, True),
        ("true", True, True),
        ("True", "true", True),
        ("false", True, False),
        (False, False, True),
        ("false", None, False),
        ("true", "yes", False),
    ],
)
def test_bool(value, request_value, expected):
    # KDG:conditions-kms: Bool kms:GrantIsForAWSResource true / "true"
    context = {} if request_value is None else {"kms:grantisforawsresource": request_value}
    assert cond({"Bool": {"kms:GrantIsForAWSResource": value}}, context) is expected


def test_binary_equals():
    # IAM:ops: BinaryEquals compares bytes with the base64 value in the policy
    block = {"BinaryEquals": {"k:blob": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="}}
    assert cond(block, {"k:blob": b"BinaryValueInBase64"})
    assert cond(block, {"k:blob": "QmluYXJ5VmFsdWVJbkJhc2U2NA=="})
    assert not cond(block, {"k:blob": b"other"})
    assert not cond(block, {})


@pytest.mark.parametrize(
    ("operator", "value", "ip", "expected"),
    [
        # IAM:ops: "203.0.113.0/24", IPv6 "2001:DB8:1234:5678::/64", a bare IP is a /32
        ("IpAddress", "203.0.113.0/24", "203.0.113.7", True),
        ("IpAddress", "203.0.113.0/24", "203.0.114.7", False),
        ("IpAddress", ["203.0.113.0/24", "2001:DB8:1234:5678::/64"], "2001:db8:1234:5678::1", True),
        ("IpAddress", "2001:DB8:1234:5678::/64", "2001:db8:1234:5679::1", False),
        ("IpAddress", "203.0.113.5", "203.0.113.5", True),
        ("IpAddress", "203.0.113.5", "203.0.113.6", False),
        ("IpAddress", "203.0.113.0/24", None, False),  # e.g. via a VPC endpoint: no aws:SourceIp
        ("IpAddress", "203.0.113.0/24", "not-an-ip", False),
        ("NotIpAddress", "203.0.113.0/24", "198.51.100.1", True),
        ("NotIpAddress", "203.0.113.0/24", "203.0.113.1", False),
        ("NotIpAddress", "203.0.113.0/24", None, True),
    ],
)
def test_ip_address(operator, value, ip, expected):
    context = {} if ip is None else {"aws:sourceip": ip}
    assert cond({operator: {"aws:SourceIp": value}}, context) is expected


@pytest.mark.parametrize(
    ("operator", "pattern", "arn", "expected"),
    [
        # IAM:ops: ArnLike matches component-wise; StringLike would match this value
        ("ArnLike", "arn:aws:someservice:*:111122223333:finance/*",
         "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt",
         False),
        ("ArnLike", "arn:aws:someservice:*:111122223333:finance/*",
         "arn:aws:someservice:us-east-2:111122223333:finance/document.txt", True),
        ("ArnEquals", "arn:aws:sns:REGION:123456789012:TOPIC-ID",
         "arn:aws:sns:REGION:123456789012:TOPIC-ID", True),
        ("ArnEquals", "arn:aws:iam::111122223333:role/*", "arn:aws:iam::111122223333:role/Dev",
         True),  # ArnEquals and ArnLike behave identically
        ("ArnLike", "arn:aws:iam::111122223333:role/*", "arn:aws:iam::111122223333:Role/Dev",
         False),  # case-sensitive
        ("ArnLike", "arn:aws:iam::*:role/Dev", "arn:aws:iam::444455556666:role/Dev", True),
        ("ArnLike", "arn:aws:iam::*:role/Dev", "arn:aws:iam::444455556666:role/Dev2", False),
        ("ArnLike", "arn:aws:iam::111122223333:role/*", None, False),
        ("ArnNotLike", "arn:aws:iam::111122223333:role/*", "arn:aws:iam::444455556666:role/x", True),
        ("ArnNotEquals", "arn:aws:iam::111122223333:role/*", "arn:aws:iam::111122223333:role/x",
         False),
        ("ArnNotLike", "arn:aws:iam::111122223333:role/*", None, True),
    ],
)
def test_arn_operators(operator, pattern, arn, expected):
    context = {} if arn is None else {"aws:principalarn": arn}
    assert cond({operator: {"aws:PrincipalArn": pattern}}, context) is expected


def test_null():
    # KDG:conditions-kms: Null kms:EncryptionContextKeys false = an encryption context exists;
    # Null kms:BypassPolicyLockoutSafetyCheck true = the parameter was not sent
    assert cond({"Null": {"kms:EncryptionContextKeys": False}}, {"kms:encryptioncontextkeys": ["a"]})
    assert not cond({"Null": {"kms:EncryptionContextKeys": "false"}}, {})
    assert not cond({"Null": {"kms:EncryptionContextKeys": "false"}},
                    {"kms:encryptioncontextkeys": []})
    assert cond({"Null": {"kms:BypassPolicyLockoutSafetyCheck": "true"}}, {})
    assert not cond({"Null": {"kms:BypassPolicyLockoutSafetyCheck": True}},
                    {"kms:bypasspolicylockoutsafetycheck": False})


# -- IfExists ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "context", "expected"),
    [
        # IAM:ops: "If the key is not present, evaluate the condition element as true"
        ("StringLikeIfExists", "t2.*", {}, True),
        ("StringLikeIfExists", "t2.*", {"ec2:instancetype": "t2.micro"}, True),
        ("StringLikeIfExists", "t2.*", {"ec2:instancetype": "m5.large"}, False),
        ("StringEqualsIfExists", "x", {}, True),
        ("StringNotEqualsIfExists", "x", {"ec2:instancetype": "x"}, False),
        ("StringNotEqualsIfExists", "x", {}, True),
        ("NumericLessThanIfExists", "3", {}, True),
        ("NumericLessThanIfExists", "3", {"ec2:instancetype": 4}, False),
        ("BoolIfExists", "true", {}, True),
        ("BoolIfExists", "true", {"ec2:instancetype": False}, False),
        ("ArnLikeIfExists", "arn:aws:iam::1:role/*", {}, True),
        ("IpAddressIfExists", "10.0.0.0/8", {}, True),
        ("IpAddressIfExists", "10.0.0.0/8", {"ec2:instancetype": "11.0.0.1"}, False),
        ("DateLessThanIfExists", "2020-01-01T00:00:00Z", {}, True),
        ("BinaryEqualsIfExists", "QQ==", {}, True),
    ],
)
def test_if_exists(operator, value, context, expected):
    assert cond({operator: {"ec2:InstanceType": value}}, context) is expected


# -- set operators -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "keys", "expected"),
    [
        # KDG:conditions-kms kms:EncryptionContextKeys with ForAnyValue: AppName=Helper plus
        # Project=Alpha is allowed; only Project=Alpha, or no encryption context, fails
        ({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "AppName"}},
         ["AppName", "Project"], True),
        ({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "AppName"}}, ["Project"], False),
        ({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "AppName"}}, None, False),
        ({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "AppName"}}, ["appname"], False),
        ({"ForAnyValue:StringEqualsIgnoreCase": {"kms:EncryptionContextKeys": "AppName"}},
         ["appname"], True),
        # ForAllValues "doesn't require any encryption context keys, but it forbids unspecified"
        ({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["Department", "Project"]}},
         ["Project"], True),
        ({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["Department", "Project"]}},
         ["Project", "Stage"], False),
        ({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["Department", "Project"]}},
         None, True),
        ({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["Department", "Project"]}},
         [], True),
        # IAM:multi: negated operators per request value
        ({"ForAnyValue:StringNotEquals": {"kms:EncryptionContextKeys": "AppName"}},
         ["AppName", "Other"], True),
        ({"ForAnyValue:StringNotEquals": {"kms:EncryptionContextKeys": "AppName"}}, ["AppName"],
         False),
        ({"ForAllValues:StringNotEquals": {"kms:EncryptionContextKeys": ["a", "b"]}}, ["c", "d"],
         True),
        ({"ForAllValues:StringNotEquals": {"kms:EncryptionContextKeys": ["a", "b"]}}, ["c", "a"],
         False),
        ({"ForAllValues:StringLike": {"kms:EncryptionContextKeys": ["aws:*"]}},
         ["aws:ebs:id", "aws:x"], True),
        ({"ForAnyValue:StringEqualsIfExists": {"kms:EncryptionContextKeys": "AppName"}}, None,
         True),
        ({"ForAnyValue:StringEqualsIfExists": {"kms:EncryptionContextKeys": "AppName"}}, [],
         True),
        ({"ForAnyValue:StringEqualsIfExists": {"kms:EncryptionContextKeys": "AppName"}}, ["x"],
         False),
        # a single-valued request value is a one-element set
        ({"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "AppName"}}, "AppName", True),
    ],
)
def test_set_operators(block, keys, expected):
    context = {} if keys is None else {"kms:encryptioncontextkeys": keys}
    assert cond(block, context) is expected


def test_resource_aliases_for_all_and_any_values():
    # KDG:conditions-kms kms:ResourceAliases: both qualifiers together require at least one alias
    # and that every alias matches
    block = {"ForAllValues:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]},
             "ForAnyValue:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]}}
    assert cond(block, {"kms:resourcealiases": ["alias/Test-1", "alias/my-Test"]})
    assert not cond(block, {"kms:resourcealiases": ["alias/Test-1", "alias/prod"]})
    assert not cond(block, {"kms:resourcealiases": []})
    assert not cond(block, {})
    only_all = {"ForAllValues:StringLike": {"kms:ResourceAliases": ["alias/*Test*"]}}
    assert cond(only_all, {})  # "this policy statement would have allowed … no aliases"


def test_grant_operations_for_all_values():
    # KDG:conditions-kms kms:GrantOperations ForAllValues Encrypt, ReEncryptTo
    block = {"ForAllValues:StringEquals": {"kms:GrantOperations": ["Encrypt", "ReEncryptTo"]}}
    assert cond(block, {"kms:grantoperations": ["Encrypt"]})
    assert cond(block, {"kms:grantoperations": ["Encrypt", "ReEncryptTo"]})
    assert not cond(block, {"kms:grantoperations": ["Encrypt", "Decrypt"]})
    any_block = {"ForAnyValue:StringEquals": {"kms:GrantOperations": ["Encrypt", "ReEncryptTo"]}}
    assert cond(any_block, {"kms:grantoperations": ["Encrypt", "Decrypt"]})
    assert not cond(any_block, {"kms:grantoperations": ["Decrypt", "ReEncryptFrom"]})


# -- OverlyPermissiveCondition -------------------------------------------------------------------------


def test_for_all_values_with_encryption_context_key_is_rejected_in_key_policies():
    # KDG:conditions-kms kms:EncryptionContext:context-key warning
    text = key_policy(allow(Condition={"ForAllValues:StringEquals": {
        "kms:EncryptionContext:Department": "IT"}}))
    assert malformed(text) == (
        "OverlyPermissiveCondition:EncryptionContext: Using the ForAllValues set operator with a "
        "single-valued condition key matches requests without the specified encryption context "
        "or with an unspecified encryption context. To fix, remove ForAllValues."
    )
    tag = key_policy(allow(Condition={"ForAllValues:StringEquals": {"aws:RequestTag/team": "x"}}))
    assert malformed(tag).startswith("OverlyPermissiveCondition: Using the ForAllValues set "
                                     "operator with a single-valued condition key")
    # ForAnyValue is allowed (the guide warns against it but names no error), as is
    # ForAllValues with the multi-valued kms:EncryptionContextKeys
    Policy.parse(key_policy(allow(Condition={"ForAnyValue:StringEquals": {
        "kms:EncryptionContext:Department": "IT"}})))
    Policy.parse(key_policy(allow(Condition={"ForAllValues:StringEquals": {
        "kms:EncryptionContextKeys": "Department"}})))


def test_for_all_values_with_encryption_context_key_is_not_checked_in_identity_policies():
    Policy.from_document({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "kms:*", "Resource": "*",
        "Condition": {"ForAllValues:StringEquals": {"kms:EncryptionContext:Department": "IT"}}}]})


# -- policy variables -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "context", "expected"),
    [
        # KDG:conditions-kms: "kms:EncryptionContext:user": "${aws:username}"
        ("StringEquals", "${aws:username}", {"k:v": "bob", "aws:username": "bob"}, True),
        ("StringEquals", "${aws:username}", {"k:v": "bob", "aws:username": "alice"}, False),
        ("StringEquals", "${aws:username}", {"k:v": "bob"}, False),  # unresolved: no match
        ("StringEquals", "${AWS:UserName}", {"k:v": "bob", "aws:username": "bob"}, True),
        ("StringEquals", "${aws:PrincipalTag/team}", {"k:v": "blue", "aws:principaltag/team": "blue"},
         True),
        ("StringEquals", "${aws:userid}", {"k:v": "AIDAX:s", "aws:userid": "AIDAX:s"}, True),
        ("StringEquals", "home/${aws:username}/", {"k:v": "home/bob/", "aws:username": "bob"}, True),
        ("StringLike", "home/${aws:username}/*", {"k:v": "home/bob/x/y", "aws:username": "bob"},
         True),
        ("StringLike", "home/${aws:username}/*", {"k:v": "home/bobby/x", "aws:username": "bob"},
         False),
        # the substituted value is literal text, never a wildcard
        ("StringLike", "${aws:username}", {"k:v": "bob", "aws:username": "b*"}, False),
        ("StringLike", "${aws:username}", {"k:v": "b*", "aws:username": "b*"}, True),
        ("StringEqualsIgnoreCase", "${aws:username}", {"k:v": "BOB", "aws:username": "bob"}, True),
        ("StringNotEquals", "${aws:username}", {"k:v": "bob", "aws:username": "bob"}, False),
        ("StringNotEquals", "${aws:username}", {"k:v": "bob"}, True),
        # IAM:vars special characters: ${*} ${?} ${$} are literal
        ("StringLike", "a${*}b", {"k:v": "a*b"}, True),
        ("StringLike", "a${*}b", {"k:v": "axb"}, False),
        ("StringLike", "a${?}", {"k:v": "a?"}, True),
        ("StringLike", "a${?}", {"k:v": "ab"}, False),
        ("StringEquals", "cost${$}", {"k:v": "cost$"}, True),
        ("StringEquals", "a${*}", {"k:v": "a*"}, True),
        # IAM:vars default values
        ("StringEquals", "${aws:userid, 'anonymous'}", {"k:v": "anonymous"}, True),
        ("StringEquals", "${aws:userid, 'anonymous'}", {"k:v": "anonymous", "aws:userid": "AIDA1"},
         False),
        # a multi-valued key cannot stand in for a string
        ("StringEquals", "${aws:tagkeys}", {"k:v": "a", "aws:tagkeys": ["a"]}, False),
        # ARN operators take variables too
        ("ArnLike", "arn:aws:iam::${aws:principalaccount}:role/*",
         {"k:v": "arn:aws:iam::111122223333:role/x", "aws:principalaccount": "111122223333"}, True),
        ("ArnLike", "arn:aws:iam::${aws:principalaccount}:role/*",
         {"k:v": "arn:aws:iam::444455556666:role/x", "aws:principalaccount": "111122223333"},
         False),
        ("Bool", "${k:flag}", {"k:v": True, "k:flag": "true"}, True),
        ("Bool", "${k:flag}", {"k:v": True, "k:flag": "false"}, False),
    ],
)
def test_policy_variables(operator, value, context, expected):
    assert cond({operator: {"k:v": value}}, context) is expected


def test_variables_are_literal_in_numeric_operators():
    # IAM:ops: no policy variables with Numeric (so such a value is not a number)
    with pytest.raises(errors.MalformedPolicyDocumentException):
        compile_condition({"NumericEquals": {"k:v": "${aws:EpochTime}"}})


def test_lazy_context_is_read_only_for_named_keys():
    read = []

    class Lazy(dict):
        def get(self, key, default=None):
            read.append(key)
            return super().get(key, default)

    compiled = compile_condition({"StringEquals": {"kms:EncryptionContext:AppName": "ExampleApp",
                                                   "kms:CallerAccount": "${aws:PrincipalAccount}"}})
    compiled(Lazy({"kms:encryptioncontext:appname": "ExampleApp", "kms:calleraccount": ACCT,
                   "aws:principalaccount": ACCT}))
    assert set(read) == {"kms:encryptioncontext:appname", "kms:calleraccount",
                         "aws:principalaccount"}


# -- invalid conditions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("x", "The Condition element must be a JSON object."),
        ({"StringEqual": {"k:v": "a"}}, "Condition operator StringEqual is not supported."),
        ({"ForSomeValues:StringEquals": {"k:v": "a"}},
         "Condition operator ForSomeValues:StringEquals is not supported."),
        ({"NullIfExists": {"k:v": "true"}},
         "Null cannot be combined with IfExists or a set operator: NullIfExists."),
        ({"ForAnyValue:Null": {"k:v": "true"}},
         "Null cannot be combined with IfExists or a set operator: ForAnyValue:Null."),
        ({"StringEquals": "a"}, "Condition operator StringEquals must map condition keys to values."),
        ({"StringEquals": {"k:v": {"a": 1}}},
         "Condition operator StringEquals has an invalid value for k:v: {'a': 1}."),
        ({"StringEquals": {"k:v": [["a"]]}},
         "Condition operator StringEquals has an invalid value for k:v: ['a']."),
        ({"NumericEquals": {"k:v": "ten"}},
         "Condition operator NumericEquals has an invalid value for k:v: 'ten'."),
        ({"DateLessThan": {"k:v": "tomorrow"}},
         "Condition operator DateLessThan has an invalid value for k:v: 'tomorrow'."),
        ({"DateLessThan": {"k:v": "2020-*"}},
         "Condition operator DateLessThan has an invalid value for k:v: '2020-*'."),
        ({"Bool": {"k:v": "yes"}}, "Condition operator Bool has an invalid value for k:v: 'yes'."),
        ({"Null": {"k:v": "maybe"}}, "Condition operator Null has an invalid value for k:v: 'maybe'."),
        ({"BinaryEquals": {"k:v": "not base64!"}},
         "Condition operator BinaryEquals has an invalid value for k:v: 'not base64!'."),
        ({"IpAddress": {"k:v": "10.0.0.0/33"}},
         "Condition operator IpAddress has an invalid value for k:v: '10.0.0.0/33'."),
        ({"StringEquals": {"": "a"}}, "Condition operator StringEquals has an empty condition key."),
    ],
)
def test_invalid_conditions(condition, message):
    assert malformed(key_policy(allow(Condition=condition))) == message


def test_operator_names_are_case_insensitive():
    # (keyledger) choice
    assert cond({"stringequals": {"k:v": "a"}}, {"k:v": "a"})
    assert cond({"forallvalues:stringequals": {"k:v": "a"}}, {"k:v": ["a"]})


def test_empty_condition_block_is_no_condition():
    assert Policy.parse(key_policy(allow(Condition={}))).statements[0].condition is None
