"""The OpenAPI document as client generators read it: the shapes it gives the answers agree with
the schemas the answers are written to (``payments.result.v1``, ``payments.contracts.v1``)."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from engine.events import EVENT_TYPES
from ingest.api.app import create_app
from ingest.api.problems import PROBLEMS
from ingest.api.settings import Settings
from ingest.config_file import load_sample_config, parse_config
from tests.e2e.server import CONFIG
from tests.ingest.api.test_app import body_of, call

ROOT = Path(__file__).resolve().parents[3]
PROTO = ROOT / "proto"
RESULT_SCHEMA = PROTO / "payments/result/v1/composite_result.schema.json"
VIOLATION_SCHEMA = PROTO / "payments/contracts/v1/contract_violation.schema.json"


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path_factory.mktemp("openapi"))
    return create_app(settings).openapi()


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def _facets(root: dict[str, Any], schema: dict[str, Any]) -> tuple[set[object], set[str]]:
    """A property's allowed values (empty: any) and formats, with ``null`` left out: OpenAPI
    spells a nullable field ``anyOf [X, null]``, JSON Schema ``type: [X, null]``."""
    schema = _resolve(root, schema)
    branches = [_resolve(root, branch) for branch in schema.get("anyOf", [schema])]
    values = {value for branch in branches for value in branch.get("enum", ()) if value is not None}
    formats = {branch["format"] for branch in branches if "format" in branch}
    return values, formats


def _pairs(document: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(name, JSON Schema root, JSON Schema object, OpenAPI object) for each shape both describe."""
    result = json.loads(RESULT_SCHEMA.read_text(encoding="utf-8"))
    violation = json.loads(VIOLATION_SCHEMA.read_text(encoding="utf-8"))
    components = document["components"]["schemas"]
    return [
        ("CompositeResult", result, result, components["CompositeResultOut"]),
        ("StepResult", result, result["$defs"]["StepResult"], components["StepResultOut"]),
        ("ValidationIssue", result, result["$defs"]["ValidationIssue"], components["ValidationIssueOut"]),
        # As GET /v1/violations lists it: with its list's own `seq` (its cursor) besides.
        ("ContractViolation", violation, violation, components["ListedViolationOut"]),
    ]


#: The fields an answer adds to its JSON Schema's shape, by that shape: a violation's place in its list.
_LISTED_ONLY = {"ContractViolation": {"seq"}}


def test_the_answers_shapes_have_the_fields_values_and_formats_of_their_json_schemas(
    document: dict[str, Any],
) -> None:
    """A client generated from /openapi.json gets the closed lists (error codes, decline codes,
    statuses) and the timestamps of payments.result.v1 and payments.contracts.v1, not bare strings.
    payments.result.v1's statuses are those of a processed payment and ``rejected``, the status of
    a refused request looked up (``RefusedPaymentOut``, which GET /v1/payments/{id} answers too)."""
    refused = document["components"]["schemas"]["RefusedPaymentOut"]["properties"]["status"]["const"]
    for name, root, wire, described in _pairs(document):
        assert set(described["properties"]) - _LISTED_ONLY.get(name, set()) == set(wire["properties"]), name
        for field, schema in wire["properties"].items():
            values, formats = _facets(document, described["properties"][field])
            if name == "CompositeResult" and field == "status":
                values = values | {refused}
            assert (values, formats) == _facets(root, schema), (name, field)


def test_the_analytics_events_columns_take_the_results_codes(document: dict[str, Any]) -> None:
    result = json.loads(RESULT_SCHEMA.read_text(encoding="utf-8"))
    step = result["$defs"]["StepResult"]["properties"]
    column = document["components"]["schemas"]["AnalyticsEventOut"]["properties"]

    for field in ("error_code", "decline_code"):
        assert _facets(document, column[field]) == _facets(result, step[field]), field


#: The calls that answer a problem by its code, as their first argument: raised by a handler, a
#: document built by the payment desk, and the refusals of the connection (``payorch.http_guard``).
_PROBLEM_CALLS = frozenset({"ApiProblem", "problem_document", "_refuse"})


def _codes_sent() -> set[str]:
    """Every problem code the code base answers with: the string a problem call is given, and the
    codes of a status-to-code mapping (the HTTP errors Starlette raises: 404, 405, 413)."""
    codes: set[str] = set()
    for package in ("ingest", "payorch"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and node.args:
                    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                    first = node.args[0]
                    if (
                        name in _PROBLEM_CALLS
                        and isinstance(first, ast.Constant)
                        and isinstance(first.value, str)
                    ):
                        codes.add(first.value)
                elif isinstance(node, ast.Dict) and node.keys:
                    keys, values = node.keys, node.values
                    if all(isinstance(k, ast.Constant) and isinstance(k.value, int) for k in keys) and all(
                        isinstance(v, ast.Constant) and isinstance(v.value, str) for v in values
                    ):
                        codes.update(str(v.value) for v in values if isinstance(v, ast.Constant))
    return codes


def test_a_problems_code_is_one_of_the_codes_the_service_sends(document: dict[str, Any]) -> None:
    """``code`` is a closed set: a generated client switches on it. It was any string."""
    listed = document["components"]["schemas"]["ProblemOut"]["properties"]["code"]["enum"]
    sent = _codes_sent()

    assert sent, "no problem call found: the scan no longer sees how problems are raised"
    assert sent <= set(listed), sent - set(listed)  # a new code is listed (and has a page)
    assert set(listed) == set(PROBLEMS)
    # Listed and sent nowhere: only the table's 415, kept with its page though no route raises it.
    assert set(listed) - sent == {"unsupported_media_type"}


def test_a_problems_type_links_to_the_page_of_its_code(document: dict[str, Any]) -> None:
    """A generated client reads ``type`` as a link (a relative one: below ``servers``) and asks for
    a page by one of the codes (both were any string)."""
    problem = document["components"]["schemas"]["ProblemOut"]["properties"]
    (code,) = document["paths"]["/problems/{code}"]["get"]["parameters"]

    assert problem["type"]["format"] == "uri-reference"
    assert code["schema"]["enum"] == problem["code"]["enum"]


async def test_each_operation_says_whether_it_needs_a_key_as_it_does(tmp_path: Path) -> None:
    """``security`` on every operation (Redocly's ``security-defined``): ``[]`` exactly where no key
    is asked for, so that neither a linter nor a reader takes a public route for an undocumented one."""
    settings = Settings(config=parse_config(CONFIG), data_dir=tmp_path)
    app = create_app(settings)
    document = app.openapi()
    asked: dict[str, bool] = {}
    async with app.router.lifespan_context(app):
        for path, operations in document["paths"].items():
            for method in operations:
                concrete = path.replace("{payment_id}", "pay_none").replace("{code}", "not_found")
                answer = await call(app, method.upper(), concrete, [], body_of(b"{}"))
                asked[f"{method} {path}"] = answer.status == 401
    declared = {
        f"{method} {path}": operation["security"] != []
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }

    assert declared == asked
    assert [name for name, needs_key in declared.items() if not needs_key] == [
        "get /problems/{code}",
        "get /healthz",
        "get /readyz",
        "get /metrics",
    ]


def test_every_operation_has_a_readable_operation_id(document: dict[str, Any]) -> None:
    """Generated clients name their functions after operationIds: FastAPI's default for a route
    without one (``healthz_healthz_get``) is derived from the handler, path and method, and changes
    with any of them."""
    paths = document["paths"].values()
    ids = [operation.get("operationId", "") for operations in paths for operation in operations.values()]

    assert all(re.fullmatch(r"(get|list|create)[A-Z][A-Za-z]*", name) for name in ids), ids
    assert len(set(ids)) == len(ids)


#: pydantic's names for a number's bounds, which JSON Schema (and so a client generator or a
#: fuzzer reading the document) does not know: it takes such a parameter as unbounded.
_PYDANTIC_BOUNDS = frozenset({"ge", "gt", "le", "lt"})


def test_a_query_parameters_bounds_are_json_schemas(document: dict[str, Any]) -> None:
    """``limit`` of the lists is 1 to 10,000, as ``minimum`` and ``maximum``."""
    stray: dict[str, frozenset[str]] = {}
    limits: dict[str, tuple[object, object]] = {}
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                for branch in schema.get("anyOf", [schema]):
                    if _PYDANTIC_BOUNDS & set(branch):
                        stray[f"{path} {parameter['name']}"] = _PYDANTIC_BOUNDS & set(branch)
                if parameter["name"] == "limit":
                    limits[operation["operationId"]] = (schema.get("minimum"), schema.get("maximum"))

    assert stray == {}
    assert limits == {
        "listViolations": (1, 10_000),
        "listComplaints": (1, 10_000),
        "listPayments": (1, 10_000),
    }


def test_each_event_type_is_described_with_its_own_fields(document: dict[str, Any]) -> None:
    """GET /v1/payments/{id} lists events of every type in engine.events, each with the fields of
    its type: a client reads them as typed fields, chosen by ``type``, not as loose extras."""
    events = document["components"]["schemas"]["PaymentOut"]["properties"]["events"]["items"]
    assert events["discriminator"]["propertyName"] == "type"
    mapping = events["discriminator"]["mapping"]
    described = {kind: _resolve(document, {"$ref": ref}) for kind, ref in mapping.items()}

    assert set(described) == {kind.event_type for kind in EVENT_TYPES}
    for kind in EVENT_TYPES:
        schema = described[kind.event_type]
        assert schema["properties"]["type"]["const"] == kind.event_type
        assert set(schema["properties"]) == {"type", *(field.name for field in fields(kind))}, kind
    failed = described["StepFailed"]["properties"]
    result = json.loads(RESULT_SCHEMA.read_text(encoding="utf-8"))
    step = result["$defs"]["StepResult"]["properties"]
    for name in ("error_code", "decline_code"):
        assert _facets(document, failed[name]) == _facets(result, step[name]), name


async def test_the_bodies_the_docs_offer_to_try_are_taken_by_each_sample_merchant(tmp_path: Path) -> None:
    """/docs' "Try it out" sends the document's example body: without one Swagger UI built it from
    the types ("merchant_id": "string", "amount": 0), and every key got a 403 listing three errors."""
    config = load_sample_config()
    app = create_app(Settings(config=config, data_dir=tmp_path))
    paths = app.openapi()["paths"]
    payment = paths["/v1/payments"]["post"]["requestBody"]["content"]
    complaint = paths["/v1/complaints"]["post"]["requestBody"]["content"]
    bodies = [
        ("/v1/payments", b"application/json", json.dumps(payment["application/json"]["example"]).encode()),
        (
            "/v1/payments",
            b"application/x-www-form-urlencoded",
            urlencode(payment["application/x-www-form-urlencoded"]["example"]).encode(),
        ),
        (
            "/v1/complaints",
            b"application/json",
            json.dumps(complaint["application/json"]["example"]).encode(),
        ),
    ]
    async with app.router.lifespan_context(app):
        for merchant in config.merchants:
            key = b"Bearer " + merchant.api_keys[0].encode()
            for path, media_type, body in bodies:
                headers = [(b"authorization", key), (b"content-type", media_type)]
                answer = await call(app, "POST", path, headers, body_of(body))
                assert answer.status in (200, 201), (merchant.merchant_id, path, answer.body)
                issues = answer.json().get("validation_errors", [])
                assert isinstance(issues, list)
                assert [issue for issue in issues if issue["severity"] == "error"] == []
