"""schemathesis hooks for scripts/contract-test.sh.

The run is authorized as an ADMIN (the bootstrap admin's token), so role- and owner-checked
operations reach their real logic.

- Two operations would end that session and leave the rest of the run with 401s:
  PUT /api/auth/role (it revokes the target's session even when the role does not change)
  and DELETE /api/users/{userId}. The admin's id is visible to the fuzzer (GET /api/users), so
  a generated request aimed at the admin is pointed at a fresh random id instead (a 404).
- A message's `authorId` and a read status's `userId` must be the caller (403 otherwise); a
  generated UUID there would never be, so it is replaced by the admin's id and the requests
  reach the channel checks and the database. Only positive cases are changed, so negative
  cases stay exactly as generated.
- The configured refresh cookie belongs to a USER session that refresh rotates; GET
  /api/auth/me and POST /api/auth/logout get other sessions' cookies in its place, so a
  logout does not end the session refresh uses, and me's 200 stays reachable all run.
"""

import os
import uuid

import schemathesis

ADMIN_ID = os.environ["DISCODEIT_CONTRACT_ADMIN_ID"]
REFRESH = os.environ["DISCODEIT_CONTRACT_REFRESH"]
ME_REFRESH = os.environ["DISCODEIT_CONTRACT_ME_REFRESH"]
LOGOUT_REFRESH = os.environ["DISCODEIT_CONTRACT_LOGOUT_REFRESH"]


def _is_uuid(value):
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _is_negative(case):
    meta = getattr(case, "meta", None)
    return meta is not None and meta.generation.mode.is_negative


@schemathesis.hook
def before_call(context, case, kwargs):
    method = case.operation.method.upper()
    path = case.operation.path
    body = case.body if isinstance(case.body, dict) else None
    if method == "PUT" and path == "/api/auth/role" and body is not None:
        if str(body.get("userId")) == ADMIN_ID:
            body["userId"] = str(uuid.uuid4())
    elif method == "DELETE" and path == "/api/users/{userId}":
        if str((case.path_parameters or {}).get("userId")) == ADMIN_ID:
            case.path_parameters["userId"] = str(uuid.uuid4())
    elif (method, path) in (("GET", "/api/auth/me"), ("POST", "/api/auth/logout")):
        cookies = case.cookies or {}
        if cookies.get("refresh_token") == REFRESH:
            cookies["refresh_token"] = ME_REFRESH if method == "GET" else LOGOUT_REFRESH
    elif _is_negative(case):
        return
    elif method == "POST" and path == "/api/messages" and body is not None:
        request = body.get("messageCreateRequest")
        if isinstance(request, dict) and _is_uuid(request.get("authorId")):
            request["authorId"] = ADMIN_ID
    elif method == "POST" and path == "/api/readStatuses" and body is not None:
        if _is_uuid(body.get("userId")):
            body["userId"] = ADMIN_ID
