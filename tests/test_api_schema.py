"""Property-based: requests schemathesis derives from the OpenAPI schema, valid and invalid, get no
5xx, and every answer matches the schema and content type it documents."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from api.main import create_app
from api.settings import Settings

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, build_api_db):
    db, _ = build_api_db(tmp_path_factory.mktemp("schema"))
    # from_asgi starts the app's lifespan, so the cache is loaded as under uvicorn.
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(db=db)))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_error_for_any_generated_request(api_schema, mode):
    # Strategies per operation keep every endpoint covered (one strategy over all of them may not).
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if mode is GenerationMode.NEGATIVE and not (len(operation.path_parameters) or len(operation.query)):
            continue  # nothing to get wrong in a request without parameters

        @given(case=operation.as_strategy(mode))
        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(checks=CHECKS)

        check()
