"""我的消息: the inbox, the unread count in the header, mark read one or all (POST with CSRF)."""

from __future__ import annotations

from sqlalchemy import select

from engine.store.models import Notification


def notes_of(sessions, user_id: int) -> list[Notification]:
    with sessions() as s:
        return list(
            s.scalars(select(Notification).where(Notification.user_id == user_id).order_by(Notification.id))
        )


def test_inbox_unread_count_and_mark_read(make_instance, browser, sessions, world):
    iid = make_instance(name="牦牛养殖")
    me = browser("town_a1")
    page = me.get("/messages/").get_data(as_text=True)
    assert "新待办: 牦牛养殖" in page and f"/instances/{iid}" in page
    (note,) = notes_of(sessions, world.u["town_a1"].id)
    assert 'title="未读">1</span>' in me.get("/tasks/").get_data(as_text=True)
    assert me.client.post(f"/messages/{note.id}/read").status_code == 400, "no CSRF token"
    assert browser("town_a2").post(f"/messages/{note.id}/read").status_code == 404, "someone else's"
    assert me.post("/messages/999999/read").status_code == 404
    assert me.post(f"/messages/{note.id}/read").status_code == 302
    assert notes_of(sessions, world.u["town_a1"].id)[0].read_at is not None
    assert 'title="未读"' not in me.get("/tasks/").get_data(as_text=True)


def test_mark_all_read(make_instance, browser, sessions, world):
    make_instance()
    make_instance()
    me = browser("town_a1_b")
    assert "2 条未读" in me.get("/messages/").get_data(as_text=True)
    r = me.post("/messages/read-all")
    assert r.status_code == 302
    assert "已将 2 条消息标为已读" in me.get("/messages/").get_data(as_text=True)
    assert all(n.read_at is not None for n in notes_of(sessions, world.u["town_a1_b"].id))
    assert all(n.read_at is None for n in notes_of(sessions, world.u["town_a1"].id)), "only one's own"


def test_inbox_needs_login(browser):
    assert browser().get("/messages/").status_code == 302
