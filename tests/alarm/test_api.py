"""MON-8 administration: panel account numbers on objects, the event table, problem JSON."""

from __future__ import annotations

import httpx

from tests.alarm.helpers import make_panel
from tests.conftest import Tenant


async def test_account_numbers_on_objects_unique_per_prefix_and_key_never_shown(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """MON-8: an object carries several numbers; one number and prefix is taken once across the
    hub (409 alarm_account_taken), another line prefix makes it a different panel; the key is
    write-only; another company cannot see or touch them."""
    panel, object_id = await make_panel(client, tenant, key="00" * 16)
    url = f"/api/objects/{object_id}/alarm-accounts"
    taken = await client.post(url, json={"number": panel.account}, headers=tenant.admin.headers)
    assert taken.status_code == 409 and taken.json()["code"] == "alarm_account_taken"
    other_line = await client.post(
        url, json={"number": panel.account, "line": "7"}, headers=tenant.admin.headers
    )
    assert other_line.status_code == 201, other_line.text
    listed = (await client.get(url, headers=tenant.dispatcher.headers)).json()
    assert [(a["line"], a["encrypted"]) for a in listed] == [("", True), ("7", False)]
    assert all("key" not in a and "key_hex" not in a for a in listed)
    foreign = await client.get(url, headers=other_tenant.admin.headers)
    assert foreign.status_code == 404 and foreign.json()["code"] == "object_not_found"
    hijack = await client.patch(
        f"/api/alarm/accounts/{listed[0]['id']}", json={"key": None}, headers=other_tenant.admin.headers
    )
    assert hijack.status_code == 404 and hijack.json()["code"] == "alarm_account_not_found"


async def test_bad_numbers_and_keys_are_problem_json(client: httpx.AsyncClient, tenant: Tenant) -> None:
    """MON-8: a number that is not 3-16 hex digits, a key that is not 32/48/64 hex digits: 400."""
    _, object_id = await make_panel(client, tenant)
    url = f"/api/objects/{object_id}/alarm-accounts"
    for body in ({"number": "12"}, {"number": "XYZ123"}, {"number": "1234", "key": "ABC"}):
        refused = await client.post(url, json=body, headers=tenant.admin.headers)
        assert refused.status_code == 400 and refused.headers["content-type"].startswith(
            "application/problem+json"
        )
    engineer = await client.post(url, json={"number": "1234"}, headers=tenant.engineer.headers)
    assert engineer.status_code == 403


async def test_key_and_restore_rule_change_and_numbers_are_removed(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: an administrator sets a key and resolve-on-restore, then removes the number."""
    _, object_id = await make_panel(client, tenant)
    url = f"/api/objects/{object_id}/alarm-accounts"
    (account,) = (await client.get(url, headers=tenant.admin.headers)).json()
    changed = await client.patch(
        f"/api/alarm/accounts/{account['id']}",
        json={"key": "AB" * 24, "resolve_on_restore": True},
        headers=tenant.admin.headers,
    )
    assert changed.status_code == 200 and changed.json()["encrypted"] and changed.json()["resolve_on_restore"]
    removed = await client.delete(f"/api/alarm/accounts/{account['id']}", headers=tenant.admin.headers)
    assert removed.status_code == 204
    assert (await client.get(url, headers=tenant.admin.headers)).json() == []


async def test_event_table_lists_defaults_and_refuses_restores_and_bad_codes(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """MON-8: every known code with its default; troubles on, alarms and openings off; a SIA
    restore follows its trouble (422); a code of the wrong shape is 422."""
    rules = {
        (r["protocol"], r["code"]): r
        for r in (await client.get("/api/alarm/rules", headers=tenant.engineer.headers)).json()
    }
    assert rules[("cid", "301")]["opens_ticket"] and rules[("sia", "AT")]["opens_ticket"]
    assert not rules[("cid", "130")]["opens_ticket"] and not rules[("sia", "OP")]["opens_ticket"]
    assert ("sia", "AR") not in rules
    cases = (
        ("sia", "AR", "alarm_code_restore"),
        ("cid", "3G1", "alarm_code_invalid"),
        ("sia", "A1", "alarm_code_invalid"),
    )
    for protocol, sent, code in cases:
        body = {"protocol": protocol, "code": sent, "opens_ticket": False}
        refused = await client.put("/api/alarm/rules", json=body, headers=tenant.admin.headers)
        assert refused.status_code == 422 and refused.json()["code"] == code, refused.text
    custom = await client.put(
        "/api/alarm/rules",
        json={"protocol": "sia", "code": "ZZ", "opens_ticket": True},
        headers=tenant.admin.headers,
    )
    assert custom.status_code == 200 and custom.json()["kind"] == "other" and custom.json()["opens_ticket"]
