"""Logging in and out: passwords, lockout, CSRF, safe redirects, session protection."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from engine.store.models import User


def test_login_lands_on_the_task_queue(browser):
    b = browser()
    r = b.login("town_a1")
    assert r.status_code == 302 and r.location == "/tasks/"
    assert "我的待办" in b.get("/tasks/").get_data(as_text=True)


def test_wrong_password_is_refused_without_saying_which_part(browser):
    b = browser()
    for name in ("town_a1", "nobody"):
        r = b.login(name, "wrong-password")
        assert r.status_code == 401
        assert "用户名或密码错误" in r.get_data(as_text=True)
    assert b.get("/tasks/").status_code == 302


def test_five_failures_lock_the_account_for_fifteen_minutes(browser, clock, sessions):
    b = browser()
    for _ in range(4):
        assert b.login("town_a1", "wrong-password").status_code == 401
    r = b.login("town_a1", "wrong-password")
    assert r.status_code == 423 and "已锁定" in r.get_data(as_text=True)
    assert b.login("town_a1").status_code == 423, "the right password is refused while locked"
    with sessions() as s:
        user = s.scalars(select(User).where(User.username == "town_a1")).one()
        assert user.locked_until == clock.now + timedelta(minutes=15)
    clock.advance(minutes=14, seconds=59)
    assert b.login("town_a1").status_code == 423
    clock.advance(seconds=2)
    assert b.login("town_a1").status_code == 302


def test_a_success_resets_the_failure_count(browser):
    b = browser()
    for _ in range(4):
        b.login("town_a1", "wrong-password")
    assert b.login("town_a1").status_code == 302
    other = browser()
    for _ in range(4):
        assert other.login("town_a1", "wrong-password").status_code == 401
    assert other.login("town_a1").status_code == 302


def test_logout_needs_post_with_csrf(browser):
    b = browser("town_a1")
    assert b.get("/logout").status_code == 405
    assert b.client.post("/logout").status_code == 400
    assert b.get("/tasks/").status_code == 200
    assert b.post("/logout").status_code == 302
    assert b.get("/tasks/").status_code == 302


def test_post_without_csrf_token_is_refused(browser):
    b = browser()
    r = b.client.post("/login", data={"username": "town_a1", "password": "secret-pass"})
    assert r.status_code == 400
    assert b.get("/tasks/").status_code == 302


def test_next_only_redirects_within_the_site(browser):
    b = browser()
    b.token()
    r = b.client.post(
        "/login?next=//evil.example/x",
        data={"username": "town_a1", "password": "secret-pass", "csrf_token": b.token()},
    )
    assert r.location == "/tasks/"
    b2 = browser()
    r = b2.client.post(
        "/login?next=/instances/",
        data={"username": "town_a1", "password": "secret-pass", "csrf_token": b2.token()},
    )
    assert r.location == "/instances/"


def test_strong_session_protection_drops_a_session_moved_to_another_browser(browser):
    b = browser("town_a1")
    assert b.get("/tasks/").status_code == 200
    r = b.get("/tasks/", headers={"User-Agent": "SomethingElse/1.0"})
    assert r.status_code == 302 and r.location.startswith("/login")
