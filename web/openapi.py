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


TASK_REF = {"$ref": "#/components/schemas/Task"}
STATE_REF = {"$ref": "#/components/schemas/InstanceState"}
COMMENT = {"comment": {"type": "string", "description": "意见 or reason"}}
TO_USER = {"to_user_id": {"type": "integer"}}
PARTY = {"party": {"type": "string", "description": "countersign party: a department code"}}
TASK_ACTIONS = (
    ("claim", "签收: take an offered task", {}),
    ("unclaim", "取消签收: give a claimed task back", {}),
    ("reassign", "转办: hand the task to another holder of its role", {**TO_USER, **COMMENT}),
    ("delegate", "委派: ask someone who sees the instance for an opinion", {**TO_USER, **COMMENT}),
    ("hand_back", "交回: return a delegated task with an opinion (comment required)", COMMENT),
    ("urge", "催办: press an open task (starter, earlier handler or unit above)", COMMENT),
)
INSTANCE_ACTIONS = (
    ("withdraw", "撤回: the submitter takes a submission back before the next step acts", COMMENT),
    ("suspend", "挂起: stop the instance and its clocks (supervisor; reason required)", COMMENT),
    ("resume", "恢复: restart a suspended instance (supervisor)", COMMENT),
    (
        "add_signer",
        "加签: one more party at a countersign step (supervisor; reason required)",
        {**PARTY, **COMMENT},
    ),
    (
        "remove_signer",
        "减签: drop a pending countersign party (supervisor; reason required)",
        {**PARTY, **COMMENT},
    ),
)


def _action(summary: str, result: dict, properties: dict) -> dict:
    """A POST approval action: an optional JSON body of ``properties``, the changed task or instance."""
    operation = {"summary": summary, "parameters": [ID], "responses": {"200": _json(result), **ERRORS}}
    if properties:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": {"type": "object", "properties": properties}}},
        }
    return {"post": operation}


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
            "Task": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "instance_id": {"type": "integer"},
                    "state": {"type": "string"},
                    "party": {"type": "string", "nullable": True},
                    "status": {"type": "string"},
                    "assignee_id": {"type": "integer", "nullable": True},
                    "delegated_by_id": {"type": "integer", "nullable": True},
                    "urge_count": {"type": "integer"},
                },
            },
            "InstanceState": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "state": {"type": "string"},
                    "status": {"type": "string", "enum": ["active", "suspended", "completed"]},
                    "version": {"type": "integer"},
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
        **{
            f"/tasks/{{id}}/{name}": _action(summary, TASK_REF, fields)
            for name, summary, fields in TASK_ACTIONS
        },
        **{
            f"/instances/{{id}}/{name}": _action(summary, STATE_REF, fields)
            for name, summary, fields in INSTANCE_ACTIONS
        },
        "/openapi.json": {
            "get": {"summary": "This document", "security": [], "responses": {"200": _json(JSON_OBJECT)}}
        },
    },
}
