"""``shuangti demo`` and ``shuangti serve`` (with the scheduler as a child process)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import audit
from engine.store.db import make_engine, session_factory
from engine.store.models import Instance, User
from web.cli import main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_reset_loads_the_demo_twice(db_url, capsys):
    for _ in range(2):
        assert main(["--db", db_url, "demo", "--reset"]) == 0
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count(User.id)).where(User.username == "township")) == 1
        assert s.scalar(select(func.count(Instance.id))) > 5
        assert audit.verify(s) == []
    engine.dispose()
    assert "shuangti-demo" in capsys.readouterr().out


def children(pid: int) -> list[int]:
    """Child processes of ``pid``, read per thread (a request thread may end while we read)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


@pytest.mark.parametrize("with_scheduler", [False, True])
def test_serve_answers_and_stops_its_scheduler(with_scheduler, tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert main(["--db", url, "migrate"]) == 0
    port = free_port()
    cmd = [sys.executable, "-m", "web.cli", "--db", url, "serve", "--port", str(port)]
    server = subprocess.Popen(
        cmd + (["--with-scheduler"] if with_scheduler else []),
        cwd=tmp_path,
        env={**os.environ, "SHUANGTI_SECRET_KEY": "cli-test"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    assert r.status == 200 and "登录" in r.read().decode()
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve did not answer within 60 s"
                time.sleep(0.3)
        kids = children(server.pid)
        assert len(kids) == (1 if with_scheduler else 0)
        if kids:
            assert b"scheduler" in Path(f"/proc/{kids[0]}/cmdline").read_bytes()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    for kid in kids:
        assert not Path(f"/proc/{kid}").exists(), "the scheduler child outlived serve"
