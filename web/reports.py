"""报表 (reports): the Ganzi exports, imports, templates and dashboards of ``workflows.reports``.

Every report runs as the logged-in user's ``Actor``, so it holds only what they see; a county
outside their sight is a 404. An import is all or nothing: it runs inside the request's one
transaction and a refused file shows every fault (sheet, row, column) in a table with 422.
"""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from datetime import date
from decimal import Decimal
from xml.etree import ElementTree

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import select

from engine.errors import InvalidForm, NotFound
from engine.forms import fen_to_wan
from engine.store.models import Instance, OrgUnit
from web import db
from workflows import jobs, policy, project_delivery, project_library
from workflows.reports import exports, importer, industry, ranking, spending, targets
from workflows.reports.places import COUNTY, Places

bp = Blueprint("reports", __name__)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TEMPLATES = {
    importer.PROJECTS: lambda: importer.template(db.runtime(), importer.PROJECTS),
    importer.PLAN: lambda: importer.template(db.runtime(), importer.PLAN),
    "spending": spending.template,
    "ranking": ranking.template,
}
IMPORTS = {importer.PROJECTS: importer.import_projects, importer.PLAN: importer.import_plan}


def _xlsx(data: bytes, name: str) -> Response:
    return Response(data, mimetype=XLSX, headers={"Content-Disposition": f"attachment; filename={name}.xlsx"})


def _county(s, actor) -> OrgUnit | None:
    """``?county=CODE``: a county within the user's sight, or None when not given."""
    code = request.args.get("county")
    if not code:
        return None
    unit = s.scalars(select(OrgUnit).where(OrgUnit.code == code, OrgUnit.kind == COUNTY)).first()
    if unit is None or not actor.sees(unit.path):
        raise NotFound(f"县(市)不存在 (county {code} not found)")
    return unit


def _policy() -> policy.Policy:
    year = request.args.get("year", type=int) or policy.years()[-1]
    if year not in policy.years():
        abort(404)
    return policy.load(year)


def _date(name: str) -> date | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidForm({name: "日期格式应为 YYYY-MM-DD (date expected)"}) from None


XLSX_UNPACKED_MAX = 64 * 1024 * 1024
"""The most an uploaded workbook may unpack to (a zip bomb is refused before it is opened)."""
NOT_XLSX = "不是有效的 Excel (.xlsx) 文件 (not an .xlsx file)"


def _upload() -> bytes:
    """The uploaded workbook's bytes: an ``.xlsx`` name, and a zip holding a workbook of sane size
    whose XML parts are well formed (openpyxl would otherwise fail deep inside an import)."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InvalidForm({"file": "请选择 Excel 文件 (choose an .xlsx file)"})
    data = upload.read()
    if not upload.filename.lower().endswith(".xlsx") or not data.startswith(b"PK\x03\x04"):
        raise InvalidForm({"file": NOT_XLSX})
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            if not {"[Content_Types].xml", "xl/workbook.xml"} <= set(book.namelist()):
                raise InvalidForm({"file": NOT_XLSX})
            if sum(member.file_size for member in book.infolist()) > XLSX_UNPACKED_MAX:
                limit = XLSX_UNPACKED_MAX // (1024 * 1024)
                raise InvalidForm({"file": f"解压后超过 {limit} MB (unpacks to more than {limit} MB)"})
            for name in book.namelist():
                if name.endswith((".xml", ".rels")):
                    ElementTree.fromstring(book.read(name))
    except (zipfile.BadZipFile, ElementTree.ParseError):
        raise InvalidForm({"file": NOT_XLSX}) from None
    return data


def _visible_counties(s, actor) -> list[OrgUnit]:
    return [u for u in Places.load(s).counties() if actor.sees(u.path)]


@bp.get("/reports/")
@login_required
def index():
    s = db.session()
    return render_template(
        "reports/index.html",
        counties=_visible_counties(s, db.actor(s)),
        years=policy.years(),
        kinds=(importer.PROJECTS, importer.PLAN),
    )


@bp.get("/reports/library.xlsx")
@login_required
def library_xlsx():
    s, actor = db.session(), db.actor()
    return _xlsx(exports.library(s, db.runtime(), actor, _county(s, actor)), "library")


@bp.get("/reports/plan.xlsx")
@login_required
def plan_xlsx():
    s, actor = db.session(), db.actor()
    return _xlsx(exports.annual_plan(s, db.runtime(), actor, _policy().year, _county(s, actor)), "plan")


@bp.get("/reports/ledger.xlsx")
@login_required
def ledger_xlsx():
    s, actor = db.session(), db.actor()
    return _xlsx(exports.ledger(s, db.runtime(), actor, _county(s, actor)), "ledger")


@bp.get("/reports/audit.xlsx")
@login_required
def audit_xlsx():
    s, actor = db.session(), db.actor()
    instance_id = request.args.get("instance", type=int)
    county = _county(s, actor)
    if instance_id is None and county is None:
        raise InvalidForm({"instance": "请指定事项编号或县(市) (give an instance or a county)"})
    data = exports.audit(
        s, db.runtime(), actor, instance_id=instance_id, county=county, start=_date("from"), end=_date("to")
    )
    return _xlsx(data, "audit")


@bp.get("/reports/industry.xlsx")
@login_required
def industry_xlsx():
    p, s = _policy(), db.session()
    return _xlsx(industry.workbook(p, industry.county_shares(s, db.actor(s), p)), "industry")


def _bulletin() -> targets.Bulletin:
    quarter = request.args.get("quarter", type=int)
    if quarter not in (1, 2, 3, 4):
        raise InvalidForm({"quarter": "季度须为 1–4 (quarter must be 1 to 4)"})
    s = db.session()
    return targets.bulletin(s, db.actor(s), _policy(), quarter)


@bp.get("/reports/targets")
@login_required
def targets_html():
    return Response(targets.html(_bulletin(), db.now()), mimetype="text/html")


@bp.get("/reports/targets.xlsx")
@login_required
def targets_xlsx():
    return _xlsx(targets.workbook(_bulletin()), "targets")


def _import_failed(failed: importer.ImportFailed, title: str):
    return render_template("reports/import_errors.html", title=title, errors=failed.errors), 422


@bp.post("/reports/spending.xlsx")
@login_required
def spending_xlsx():
    p, data, s = _policy(), _upload(), db.session()
    try:
        ledger = spending.load(s, db.actor(s), data)
    except importer.ImportFailed as failed:
        return _import_failed(failed, _("拨付台账有误，未生成报表"))
    rows = spending.progress(
        p, ledger.allocations, ledger.disbursements, ledger.province_average, _date("as_of")
    )
    return _xlsx(spending.workbook(rows), "spending")


@bp.post("/reports/ranking.xlsx")
@login_required
def ranking_xlsx():
    p, data, s = _policy(), _upload(), db.session()
    try:
        scores, base = ranking.load(s, db.actor(s), data)
    except importer.ImportFailed as failed:
        return _import_failed(failed, _("考评得分有误，未生成报表"))
    return _xlsx(ranking.workbook(ranking.rank(p, scores), base), "ranking")


@bp.get("/import/template/<kind>.xlsx")
@login_required
def template(kind: str):
    if kind not in TEMPLATES:
        abort(404)
    return _xlsx(TEMPLATES[kind](), f"template-{kind}")


@bp.post("/import/<kind>")
@login_required
def import_file(kind: str):
    if kind not in IMPORTS:
        abort(404)
    data = _upload()
    try:
        with db.transaction() as s:
            result = IMPORTS[kind](s, db.runtime(), db.actor(s), data, db.now())
    except importer.ImportFailed as failed:
        return _import_failed(failed, _("文件有误，未导入任何数据"))
    flash(_("已导入：新增 %(new)s 条，已存在 %(old)s 条", new=len(result.created), old=len(result.existing)))
    return redirect(url_for("reports.index"))


# ---- dashboards ----------------------------------------------------------------------------

CHART_W, CHART_H, PAD = 640, 300, 44


def spending_chart(
    months: list[int], targets_by_month: dict[int, Decimal], series: dict[str, dict[int, Decimal]]
):
    """Points of the milestone curve and of each county's total spending share, in SVG coordinates."""
    top = max([Decimal(100), *targets_by_month.values(), *(v for s in series.values() for v in s.values())])
    step = (CHART_W - 2 * PAD) / max(1, len(months) - 1)

    def point(i: int, value: Decimal) -> tuple[float, float]:
        return round(PAD + i * step, 1), round(CHART_H - PAD - float(value / top) * (CHART_H - 2 * PAD), 1)

    def line(values: dict[int, Decimal]) -> list[tuple[float, float]]:
        return [point(i, values[m]) for i, m in enumerate(months) if m in values]

    return {
        "width": CHART_W,
        "height": CHART_H,
        "pad": PAD,
        "x": [(point(i, Decimal(0))[0], m) for i, m in enumerate(months)],
        "y": [(point(0, Decimal(v))[1], v) for v in range(0, int(top) + 1, 25)],
        "target": line(targets_by_month),
        "series": [(name, line(values)) for name, values in series.items()],
    }


@bp.get("/reports/spending")
@login_required
def spending_dashboard():
    """支出进度: each county's total share at each milestone against the milestone curve."""
    p, s = _policy(), db.session()
    counties = {u.code: u.name for u in _visible_counties(s, db.actor(s))}
    allocations, records = jobs.ledger(s, p.year)
    rows = spending.progress(
        p,
        {k: v for k, v in allocations.items() if k[0] in counties},
        [d for d in records if d.county in counties],
        as_of=db.now().date(),
    )
    totals = [r for r in rows if r.source == spending.TOTAL]
    months = [m.month for m in p.milestones]
    series: dict[str, dict[int, Decimal]] = {}
    for r in totals:
        if r.percent is not None:
            series.setdefault(counties[r.county], {})[r.month] = r.percent
    chart = spending_chart(months, {m.month: m.percent for m in p.milestones}, series)
    return render_template(
        "reports/spending.html", p=p, rows=totals, names=counties, chart=chart, years=policy.years()
    )


def _scoped(s, actor, key: str, county: OrgUnit | None) -> list[Instance]:
    query = select(Instance).where(Instance.workflow_key == key, actor.scope_filter(Instance.org_path))
    if county is not None:
        query = query.where(Instance.org_path.startswith(county.path, autoescape=True))
    return list(s.scalars(query.order_by(Instance.org_path, Instance.id)))


@bp.get("/reports/library")
@login_required
def library_dashboard():
    """项目库: how many projects are at each state, by category."""
    s, runtime = db.session(), db.runtime()
    actor = db.actor(s)
    county = _county(s, actor)
    found = _scoped(s, actor, project_library.KEY, county)
    counts = Counter((i.state, i.data.get("category") or "—") for i in found)
    categories = sorted({c for _state, c in counts})
    wf = runtime.registry.get(project_library.KEY).workflow
    states = [st for st in wf.states if any(counts[(st.name, c)] for c in categories)]
    return render_template(
        "reports/library.html",
        states=states,
        categories=categories,
        counts=counts,
        total=len(found),
        counties=_visible_counties(s, actor),
        county=county,
    )


@bp.get("/reports/ledger")
@login_required
def ledger_dashboard():
    """资产台账: registered assets, filtered by county, ownership and asset class."""
    s = db.session()
    actor = db.actor(s)
    county = _county(s, actor)
    ownership = request.args.get("ownership") or None
    asset_class = request.args.get("asset_class") or None
    places = Places.load(s)
    assets = [
        i
        for i in _scoped(s, actor, project_delivery.KEY, county)
        if "asset_count" in i.data
        and ownership in (None, i.data.get("ownership"))
        and asset_class in (None, i.data.get("asset_class"))
    ]
    fields = {f.name: f for f in project_delivery.REGISTER_FIELDS}
    return render_template(
        "reports/ledger.html",
        assets=[(i, places.name_on_path(i.org_path, COUNTY)) for i in assets],
        total_value=fen_to_wan(sum(int(i.data.get("original_value") or 0) for i in assets)),
        counties=_visible_counties(s, actor),
        county=county,
        ownerships=fields["ownership"].choices,
        classes=fields["asset_class"].choices,
        filters={"ownership": ownership, "asset_class": asset_class},
    )
