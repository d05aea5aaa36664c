"""The OpenAPI 3 description of /api/v1, served at /api/v1/openapi.json."""

from __future__ import annotations


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


ERRORS = {
    "401": _error("no valid bearer token and no session"),
    "403": _error("visible, but the user holds no role that may do this"),
    "404": _error("no such object, or outside the user's org scope"),
    "409": _error("not possible in this state, or expected_version is stale (see current_version)"),
    "422": _error("a guard failed (reasons lists each) or a form field is wrong (fields maps each)"),
}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
JSON_OBJECT = {"type": "object", "additionalProperties": True}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


SPEC = {
    "openapi": "3.0.3",
    "info": {
        "title": "双提 Shuangti API",
        "version": "1",
        "description": "Workflow instances, tasks and the audit trail. Money is entered in 万元 strings "
        "and returned as integer 分 (fen). Times are ISO 8601 UTC.",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}, {"session": []}],
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "session"},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": {"type": "string"},
                    "message": {"type": "string"},
                    "reasons": {"type": "array", "items": {"type": "string"}},
                    "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    "current_version": {"type": "integer", "nullable": True},
                },
            },
            "Instance": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "workflow": {"type": "string"},
                    "workflow_version": {"type": "integer"},
                    "title": {"type": "string"},
                    "state": {"type": "string"},
                    "state_label": {"type": "string"},
                    "status": {"type": "string", "enum": ["active", "suspended", "completed"]},
                    "version": {"type": "integer", "description": "pass as expected_version when firing"},
                    "org_unit_id": {"type": "integer"},
                    "data": JSON_OBJECT,
                    "fields": JSON_OBJECT,
                    "checklist": {"type": "array", "items": JSON_OBJECT},
                    "actions": {"type": "array", "items": JSON_OBJECT},
                },
            },
            "FireResult": {
                "type": "object",
                "properties": {
                    "instance_id": {"type": "integer"},
                    "trigger": {"type": "string"},
                    "from_state": {"type": "string"},
                    "to_state": {"type": "string"},
                    "version": {"type": "integer"},
                    "event_id": {"type": "integer"},
                    "advanced": {"type": "boolean"},
                    "replayed": {"type": "boolean"},
                },
            },
        },
    },
    "paths": {
        "/tasks": {
            "get": {
                "summary": "我的待办: the user's open tasks, soonest due first",
                "parameters": [
                    {"name": n, "in": "query", "schema": {"type": t}}
                    for n, t in (
                        ("workflow", "string"),
                        ("state", "string"),
                        ("overdue", "string"),
                        ("page", "integer"),
                        ("per_page", "integer"),
                    )
                ],
                "responses": {"200": _json(JSON_OBJECT), "401": ERRORS["401"]},
            }
        },
        "/instances": {
            "post": {
                "summary": "Start an instance from its start form",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["workflow", "org_unit_id", "form"],
                                "properties": {
                                    "workflow": {"type": "string"},
                                    "org_unit_id": {"type": "integer"},
                                    "form": JSON_OBJECT,
                                    "idempotency_key": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {"201": _json({"$ref": "#/components/schemas/Instance"}, "started"), **ERRORS},
            }
        },
        "/instances/{id}": {
            "get": {
                "summary": "An instance with its checklist and the actions the user may take",
                "parameters": [ID],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Instance"}),
                    "401": ERRORS["401"],
                    "404": ERRORS["404"],
                },
            }
        },
        "/instances/{id}/fire": {
            "post": {
                "summary": "Take an action (fire a trigger)",
                "parameters": [ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["trigger"],
                                "properties": {
                                    "trigger": {"type": "string"},
                                    "comment": {"type": "string"},
                                    "form": JSON_OBJECT,
                                    "expected_version": {"type": "integer"},
                                    "idempotency_key": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {"200": _json({"$ref": "#/components/schemas/FireResult"}), **ERRORS},
            }
        },
        "/instances/{id}/audit": {
            "get": {
                "summary": "The hash-chained audit trail, verified",
                "parameters": [ID],
                "responses": {"200": _json(JSON_OBJECT), "401": ERRORS["401"], "404": ERRORS["404"]},
            }
        },
        "/instances/{id}/diagram.svg": {
            "get": {
                "summary": "The workflow diagram with the current state and the path taken",
                "parameters": [ID],
                "responses": {
                    "200": {
                        "description": "SVG",
                        "content": {"image/svg+xml": {"schema": {"type": "string"}}},
                    },
                    "401": ERRORS["401"],
                    "404": ERRORS["404"],
                },
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "security": [], "responses": {"200": _json(JSON_OBJECT)}}
        },
    },
}
