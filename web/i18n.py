"""Languages (语言): Chinese by default, English on request; the choice lives in the session cookie.

A logged-in user's choice is also saved as ``User.locale`` (``engine.directory.set_locale``)
and restored at their next login.

Message ids are the Chinese texts; ``translations/en`` holds the English. A fresh clone needs
no manual step: a missing or stale ``messages.mo`` is compiled from its ``.po`` at start-up.
"""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import redirect, request, session
from flask_babel import Babel, get_locale
from flask_login import current_user

from engine import directory
from engine.store.models import User
from web import db
from web.auth import _safe_next

LANGUAGES = {"zh": "中文", "en": "English"}
BILINGUAL = re.compile(r"^(?P<zh>.*?\S)\s*\((?P<en>[^()]*[A-Za-z][^()]*)\)\s*$", re.S)
TRANSLATIONS = Path(__file__).parent / "translations"


def compile_catalogs(root: Path = TRANSLATIONS) -> list[Path]:
    """Compile each ``.po`` whose ``.mo`` is missing or older; returns the files written."""
    written = []
    for po in sorted(root.glob("*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as f:
            catalog = read_po(f)
        with mo.open("wb") as f:
            write_mo(f, catalog)
        written.append(mo)
    return written


def select_locale() -> str:
    lang = session.get("lang")
    return lang if lang in LANGUAGES else "zh"


def set_language():
    lang = request.form.get("lang", "zh")
    if lang in LANGUAGES:
        session["lang"] = lang
        if current_user.is_authenticated:
            with db.transaction() as s:
                directory.set_locale(s, s.get(User, db.user_id()), lang)
    return redirect(_safe_next(request.form.get("next")))


def init_app(app) -> None:
    compile_catalogs()
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "zh")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "Asia/Shanghai")
    Babel(app, locale_selector=select_locale)
    app.add_url_rule("/lang", "set_language", set_language, methods=["POST"])
    app.jinja_env.globals["LANGUAGES"] = LANGUAGES
    app.jinja_env.globals["current_lang"] = select_locale
    app.jinja_env.filters["one_language"] = one_language


def one_language(message: object) -> str:
    """Engine and policy messages read "中文 (English)"; show the half in the page's language.

    Anything not in that form (user data, plain texts) is shown as it is.
    """
    text = str(message)
    found = BILINGUAL.match(text)
    if found is None:
        return text
    return found["en"] if str(get_locale()) == "en" else found["zh"]
