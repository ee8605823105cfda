"""DESK-6 files: upload on a ticket and on a comment, download, limits, tenancy."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from hub.db import Database
from hub.desk import service
from hub.desk.actors import Actor
from hub.desk.files import attach_file, file_path
from hub.desk.schemas import TicketCreate
from hub.settings import FileSettings, Settings
from tests.conftest import Tenant
from tests.desk.conftest import Desk


async def upload(desk: Desk, ticket_id: int, *files: tuple[str, bytes], **data: str) -> httpx.Response:
    return await desk.client.post(
        f"/api/tickets/{ticket_id}/files",
        files=[("file", (name, content, "text/plain")) for name, content in files],
        data=data,
        headers=desk.headers,
    )


async def test_upload_on_ticket_and_comment_then_download(
    desk: Desk, settings: Settings, tenant: Tenant
) -> None:
    """DESK-6: files on the ticket and on a comment, stored under files_dir/<account_id>/, downloaded
    byte for byte; a comment's file takes the comment's visibility."""
    t = await desk.ticket()
    response = await upload(desk, t["id"], ("photo.txt", b"first file"), ("../../etc/passwd", b"second"))
    assert response.status_code == 201, response.text
    first, second = response.json()
    assert first["size"] == 10 and first["sha256"] == hashlib.sha256(b"first file").hexdigest()
    assert second["filename"] == "passwd"  # no path tricks
    stored = list((settings.files_dir / str(tenant.id)).rglob("*"))
    assert len([p for p in stored if p.is_file()]) == 2

    note = await desk.post(f"/api/tickets/{t['id']}/comments", {"body": "Private photo", "public": False})
    response = await upload(desk, t["id"], ("note.txt", b"on the comment"), comment_id=str(note["id"]))
    assert response.status_code == 201, response.text
    on_comment = response.json()[0]
    assert on_comment["comment_id"] == note["id"] and on_comment["public"] is False
    comments = (await desk.get(f"/api/tickets/{t['id']}/comments"))["items"]
    assert comments[0]["file_ids"] == [on_comment["id"]]

    download = await desk.client.get(f"/api/tickets/{t['id']}/files/{first['id']}", headers=desk.headers)
    assert download.status_code == 200 and download.content == b"first file"
    assert "photo.txt" in download.headers["content-disposition"]
    assert len((await desk.get(f"/api/tickets/{t['id']}/files"))["items"]) == 3


async def test_file_of_another_ticket_or_account_is_not_found(desk: Desk, other_tenant: Tenant) -> None:
    """DESK-6 download with tenancy checks (DESK-1): the file id only works with its own ticket."""
    t1 = await desk.ticket()
    t2 = await desk.ticket()
    file_id = (await upload(desk, t1["id"], ("a.txt", b"a"))).json()[0]["id"]
    wrong_ticket = await desk.client.get(f"/api/tickets/{t2['id']}/files/{file_id}", headers=desk.headers)
    assert wrong_ticket.status_code == 404 and wrong_ticket.json()["code"] == "file_not_found"
    other = Desk(desk.client, other_tenant)
    foreign = await desk.client.get(f"/api/tickets/{t1['id']}/files/{file_id}", headers=other.headers)
    assert foreign.status_code == 404 and foreign.json()["code"] == "ticket_not_found"


@pytest.fixture
def small_files(app: Litestar, tmp_path: Path) -> Settings:
    """The same app with small limits: 3 files per ticket, 1 KiB per file."""
    import msgspec

    limited = msgspec.structs.replace(
        app.state.settings, files=FileSettings(max_files_per_ticket=3, max_file_bytes=1024)
    )
    app.state.settings = limited
    return limited


async def test_oversized_file_is_413_problem_json(desk: Desk, small_files: Settings) -> None:
    """DESK-6: a file over the per-file limit is refused with 413 file_too_large and nothing is kept,
    both when the request is obviously too big and when one part of it is."""
    t = await desk.ticket()
    response = await upload(desk, t["id"], ("big.bin", b"x" * 200_000))
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "file_too_large"
    response = await upload(desk, t["id"], ("big.bin", b"x" * 1025))
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"
    assert (await desk.get(f"/api/tickets/{t['id']}/files"))["items"] == []
    stored = [p for p in small_files.files_dir.rglob("*") if p.is_file()]
    assert stored == []


async def test_file_count_limit_refuses_the_next_file(desk: Desk, small_files: Settings) -> None:
    """DESK-6: at most max_files_per_ticket files; the next one is 409 too_many_files."""
    t = await desk.ticket()
    for i in range(3):
        assert (await upload(desk, t["id"], (f"{i}.txt", b"ok"))).status_code == 201
    response = await upload(desk, t["id"], ("4.txt", b"one too many"))
    assert response.status_code == 409 and response.json()["code"] == "too_many_files"
    assert len((await desk.get(f"/api/tickets/{t['id']}/files"))["items"]) == 3


async def test_sixteenth_file_refused_with_default_limits(desk: Desk) -> None:
    """DESK-6 defaults: 15 files per ticket; the 16th is refused (409 too_many_files)."""
    t = await desk.ticket()
    response = await upload(desk, t["id"], *[(f"{i}.txt", b"x") for i in range(15)])
    assert response.status_code == 201 and len(response.json()) == 15
    response = await upload(desk, t["id"], ("16.txt", b"x"))
    assert response.status_code == 409 and response.json()["code"] == "too_many_files"


async def test_upload_without_a_file_is_a_clear_error(desk: Desk) -> None:
    t = await desk.ticket()
    response = await desk.client.post(
        f"/api/tickets/{t['id']}/files",
        data={"public": "true"},
        files={"x": ("a", b"a")},
        headers=desk.headers,
    )
    assert response.status_code == 400 and response.json()["code"] == "file_missing"
    response = await desk.client.post(f"/api/tickets/{t['id']}/files", json={"a": 1}, headers=desk.headers)
    assert response.status_code == 400 and response.json()["code"] == "multipart_required"


async def test_uploads_are_in_the_history_and_final_tickets_take_no_more(desk: Desk, tenant: Tenant) -> None:
    """DESK-7: a file upload is a history entry with its actor; DESK-4: a cancelled (final) ticket
    takes no new comments or files from staff (409 ticket_final)."""
    t = await desk.ticket()
    uploaded = (await upload(desk, t["id"], ("report.txt", b"report"))).json()[0]
    added = [
        h for h in (await desk.get(f"/api/tickets/{t['id']}/history"))["items"] if h["kind"] == "file_added"
    ]
    assert len(added) == 1
    assert added[0]["data"]["file_id"] == uploaded["id"] and added[0]["data"]["filename"] == "report.txt"
    assert added[0]["actor_name"] == tenant.dispatcher.name
    await desk.status(t["id"], "cancelled", comment="Duplicate")
    late = await upload(desk, t["id"], ("late.txt", b"late"))
    assert late.status_code == 409 and late.json()["code"] == "ticket_final"
    response = await desk.client.post(
        f"/api/tickets/{t['id']}/comments",
        json={"body": "One more thing", "public": True},
        headers=desk.headers,
    )
    assert response.status_code == 409 and response.json()["code"] == "ticket_final"
    assert len((await desk.get(f"/api/tickets/{t['id']}/files"))["items"]) == 1


async def test_stored_bytes_follow_their_own_transaction(
    db: Database, settings: Settings, tenant: Tenant
) -> None:
    """DESK-6: a file whose upload rolls back leaves no bytes on disk; a file that commits keeps its
    bytes even when a later, unrelated savepoint in the same transaction rolls back."""
    actor = Actor("employee", tenant.dispatcher.id, tenant.dispatcher.name)
    async with db.sessionmaker() as session, session.begin():
        ticket = await service.create_ticket(session, tenant.id, actor, TicketCreate(title="Files"))
    with pytest.raises(RuntimeError):
        async with db.sessionmaker() as session, session.begin():
            lost = await attach_file(
                session, settings, tenant.id, ticket.id, actor, filename="a", content_type=None, data=b"a"
            )
            lost_path = file_path(settings, lost)
            assert lost_path.exists()
            raise RuntimeError("the request fails after the upload")
    assert not lost_path.exists()
    async with db.sessionmaker() as session, session.begin():
        kept = await attach_file(
            session, settings, tenant.id, ticket.id, actor, filename="b", content_type=None, data=b"b"
        )
        with pytest.raises(RuntimeError):
            async with session.begin_nested():
                raise RuntimeError("an unrelated step fails")
    assert file_path(settings, kept).read_bytes() == b"b"


async def test_desk_6_staff_files_private_unless_marked_public_and_deletable(
    desk: Desk, settings: Settings, tenant: Tenant
) -> None:
    """DESK-6: a staff upload is private unless marked public; staff delete a file (bytes gone,
    404 after) and the history keeps that it existed (DESK-7)."""
    t = await desk.ticket()
    plain = (await upload(desk, t["id"], ("plan.txt", b"private plan"))).json()[0]
    shown = (await upload(desk, t["id"], ("notice.txt", b"for the client"), public="true")).json()[0]
    assert (plain["public"], shown["public"]) == (False, True)
    stored = [p for p in (settings.files_dir / str(tenant.id)).rglob("*") if p.is_file()]
    assert len(stored) == 2

    path = f"/api/tickets/{t['id']}/files/{plain['id']}"
    deleted = await desk.client.delete(path, headers=desk.headers)
    assert deleted.status_code == 204, deleted.text
    assert (await desk.client.get(path, headers=desk.headers)).status_code == 404
    again = await desk.client.delete(path, headers=desk.headers)
    assert again.status_code == 404 and again.json()["code"] == "file_not_found"
    assert [f["id"] for f in (await desk.get(f"/api/tickets/{t['id']}/files"))["items"]] == [shown["id"]]
    assert len([p for p in (settings.files_dir / str(tenant.id)).rglob("*") if p.is_file()]) == 1
    history = (await desk.get(f"/api/tickets/{t['id']}/history"))["items"]
    gone = [h for h in history if h["kind"] == "file_deleted"]
    assert [(h["data"]["file_id"], h["data"]["filename"], h["actor_id"]) for h in gone] == [
        (plain["id"], "plan.txt", tenant.dispatcher.id)
    ]
