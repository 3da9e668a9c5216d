"""OpenAPI fragments for the event routes, derived from the catalog and its golden examples."""

from __future__ import annotations

import copy
from typing import Any

from loom.catalog import Catalog, EventType
from loom.cehttp import BATCH, STRUCTURED

__all__ = [
    "PROBLEM_RESPONSES",
    "batch_openapi",
    "cloudevent_openapi",
    "finalize_openapi",
    "rest_openapi",
]

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"pointer": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "retry_after": {"type": "integer"},
        "limit_bytes": {"type": "integer"},
    },
}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
    }


PROBLEM_RESPONSES: dict[str, Any] = {
    "400": _problem("Malformed request, not a CloudEvent, or a type devices may not send."),
    "401": _problem("No token, or an unknown or revoked one."),
    "403": _problem("The token may not do this (e.g. another device's events)."),
    "413": _problem("Body or event data over its limit."),
    "422": _problem("Data does not match the type's schema; `errors` has JSON pointers."),
    "429": _problem("Rate limit used up; see Retry-After."),
    "503": _problem("Kafka or the database cannot take the write now; see Retry-After."),
}

_OUTCOME = {
    "type": "object",
    "required": ["index", "status", "accepted"],
    "properties": {
        "index": {"type": "integer"},
        "id": {"type": ["string", "null"]},
        "status": {"type": "integer"},
        "accepted": {"type": "boolean"},
        "retryable": {"type": "boolean"},
        "problem": PROBLEM_SCHEMA,
    },
}
_BATCH_RESULT = {
    "type": "object",
    "required": ["results"],
    "properties": {
        "accepted": {"type": "integer"},
        "rejected": {"type": "integer"},
        "results": {"type": "array", "items": _OUTCOME},
    },
}


def _first_valid(catalog: Catalog, event_type: EventType) -> Any:
    return next((e.load() for e in catalog.examples(event_type.type) if e.valid), {})


def cloudevent_openapi(catalog: Catalog) -> dict[str, Any]:
    types = [t.type for t in catalog.ingestable()]
    envelope = {
        "type": "object",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1},
            "source": {"type": "string", "minLength": 1},
            "type": {"enum": types},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "partitionkey": {"type": "string", "description": "The device id (Kafka key)."},
            "data": {"description": "Valid against the schema of `type` (see the catalog)."},
        },
    }
    gps = catalog["device.sensor.gps.raw"]
    example = {
        "specversion": "1.0",
        "id": "5b0f7a4e-0001",
        "source": "/devices/pixel-7-ab12",
        "type": gps.type,
        "partitionkey": "pixel-7-ab12",
        "data": _first_valid(catalog, gps),
    }
    header = [
        {"name": f"ce-{name}", "in": "header", "required": False, "schema": {"type": "string"},
         "description": f"Binary mode: the `{name}` attribute."}
        for name in ("id", "source", "type", "specversion", "time", "partitionkey")
    ]  # fmt: skip
    return {
        "description": "A CloudEvent in binary mode (ce-* headers, data as the JSON body), "
        "structured mode or batched mode. 202 means the broker has the event.",
        "parameters": header,
        "requestBody": {
            "required": True,
            "content": {
                STRUCTURED: {"schema": envelope, "example": example},
                BATCH: {"schema": {"type": "array", "items": envelope}, "example": [example]},
                "application/json": {"schema": {}, "example": example["data"]},
            },
        },
        "responses": {
            "202": {
                "description": "Accepted: every event is in Kafka.",
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"type": "object", "required": ["id", "type", "topic"]},
                                _BATCH_RESULT,
                            ]
                        }
                    }
                },
            },
            "207": {
                "description": "Batch: some events were not accepted; `results` says which "
                "and whether sending them again can help (`retryable`).",
                "content": {"application/json": {"schema": _BATCH_RESULT}},
            },
            **PROBLEM_RESPONSES,
        },
    }


def rest_openapi(catalog: Catalog, event_type: EventType) -> dict[str, Any]:
    schema = copy.deepcopy(catalog.bundled_schema(event_type.type))
    # Filled in when absent: device_id from the token, timestamp = now.
    schema["required"] = [
        r for r in schema.get("required", []) if r not in ("device_id", "timestamp")
    ]
    examples = {
        e.path.stem: {"value": e.load()} for e in catalog.examples(event_type.type) if e.valid
    }
    return {
        "description": f"{event_type.description}. Stored as `{event_type.type}` "
        f"(topic `{event_type.topic()}`); 201 means the broker has it.",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema, "examples": examples}},
        },
        "responses": {
            "201": {
                "description": "Stored in Kafka.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["status", "message_id", "topic"],
                            "properties": {
                                "status": {"const": "success"},
                                "message_id": {"type": "string"},
                                "topic": {"type": "string"},
                            },
                        }
                    }
                },
            },
            **PROBLEM_RESPONSES,
        },
    }


def batch_openapi() -> dict[str, Any]:
    reading = {
        "type": "object",
        "required": ["device_id", "sensor_type", "value"],
        "properties": {
            "device_id": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"},
            "sensor_type": {"type": "string", "examples": ["gps", "heartrate", "light"]},
            "value": {"type": "object"},
            "unit": {"type": ["string", "null"]},
            "accuracy": {"type": ["number", "null"]},
        },
    }
    result = {"type": "object", "properties": {
        "status": {"type": "string"}, "total": {"type": "integer"},
        "processed": {"type": "integer"}, "failed": {"type": "integer"},
        "results": {"type": "array", "items": _OUTCOME}}}  # fmt: skip
    return {
        "description": "The seed's batch of generic readings. A reading whose `sensor_type` has "
        "a route of its own (gps, accelerometer, heartrate, power) becomes that type with "
        "`value` spread into the data; any other becomes device.sensor.generic.raw.",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "array", "items": reading}}},
        },
        "responses": {
            "201": {"description": "Every reading stored.",
                    "content": {"application/json": {"schema": result}}},
            "207": {"description": "Some readings were not stored; see `results`.",
                    "content": {"application/json": {"schema": result}}},
            **PROBLEM_RESPONSES,
        },
    }  # fmt: skip


def finalize_openapi(spec: dict[str, Any]) -> dict[str, Any]:
    """Make every error answer in the document what the service sends: problem+json.

    FastAPI documents its own 422 as application/json and knows nothing of the 400 it
    sends for a body it cannot parse, nor of 401/403/503 from the token check.
    """
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation or operation.get("parameters"):
                responses.setdefault("400", PROBLEM_RESPONSES["400"])
                responses["422"] = PROBLEM_RESPONSES["422"] | {
                    "description": "The request or its data does not match the schema."
                }
            for code, response in responses.items():
                if code.startswith(("4", "5")):
                    response["content"] = PROBLEM_RESPONSES["400"]["content"]
    spec.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
    spec.get("components", {}).get("schemas", {}).pop("ValidationError", None)
    return spec
