"""The staff web page (/staff): a clerk sees incoming applications by department, opens one
(materials downloadable), accepts, approves or rejects it with a note, marks the result ready for
pickup (which renders the certificate the kiosk's 自助出件 prints), and watches the kiosks'
heartbeats and the ratings.

Server-rendered with f-strings and ``html.escape`` (no template engine in the venv). Forms are
protected twice: the POST must be same-origin (``Origin``, else ``Referer``), and it must carry a
per-form token, an HMAC of the browser's random ``zizhu_csrf`` cookie and the form's action under
a per-process secret. An optional shared staff token (``create_app(staff_token=...)``) gates the
pages through a login form and an HttpOnly, SameSite=Strict cookie.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import secrets
from collections import defaultdict
from html import escape
from pathlib import Path as FsPath
from typing import Annotated
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from backoffice import __version__, models
from backoffice.app import ApiError, SessionDep, Settings, SettingsDep
from backoffice.heartbeat import list_kiosks, stale_after
from backoffice.ratings import INDICATORS, LEVEL_NAMES
from backoffice.schemas import CODE_PATTERN, ApplicationStatus

router = APIRouter(prefix="/staff", include_in_schema=False)

FONT_PATH = FsPath("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
AUTH_COOKIE = "zizhu_staff"
CSRF_COOKIE = "zizhu_csrf"
MAX_FORM_BYTES = 16 * 1024
MAX_NOTE_CHARS = 500
OPEN_STATUSES = ("submitted", "accepted", "in_review", "supplement_needed", "approved", "ready")

STATUS_NAMES = {
    "submitted": "已提交", "accepted": "已受理", "in_review": "审批中",
    "supplement_needed": "待补正", "approved": "已办结", "rejected": "不予受理/不予批准",
    "ready": "待领取", "collected": "已领取"}

# action -> (label, statuses it applies to, the status it leads to, note required)
ACTIONS: dict[str, tuple[str, frozenset[str], str, bool]] = {
    "accept": ("受理", frozenset({"submitted"}), "accepted", False),
    "review": ("转审批", frozenset({"accepted"}), "in_review", False),
    "supplement": ("要求补正", frozenset({"submitted", "accepted", "in_review"}),
                   "supplement_needed", True),
    "approve": ("批准办结", frozenset({"submitted", "accepted", "in_review",
                                       "supplement_needed"}), "approved", False),
    "reject": ("不予批准", frozenset({"submitted", "accepted", "in_review",
                                      "supplement_needed"}), "rejected", True),
    "ready": ("出证：待领取", frozenset({"approved"}), "ready", False),
    # 窗口发证: handed over at the desk after checking the ID (the copy a kiosk kept for staff
    # when the citizen's own print failed, or one printed here).
    "hand_over": ("窗口发证：已领取", frozenset({"ready"}), "collected", False),
}


class StaffConfig:
    def __init__(self, token: str | None) -> None:
        self.token = token or None
        # Per process: a restart invalidates open forms, which is fine for a reference server.
        self.secret = secrets.token_bytes(32)


def _config(request: Request) -> StaffConfig:
    return request.app.state.staff


class _LoginRequired(Exception):
    pass


def _authorised(request: Request, config: StaffConfig) -> bool:
    if config.token is None:
        return True
    presented = request.cookies.get(AUTH_COOKIE, "")
    return hmac.compare_digest(presented.encode(), config.token.encode())


def require_staff(request: Request) -> StaffConfig:
    config = _config(request)
    if not _authorised(request, config):
        raise ApiError(401, "staff_login_required", "Log in at /staff/login.")
    return config


StaffDep = Annotated[StaffConfig, Depends(require_staff)]


# --- CSRF ------------------------------------------------------------------------------------

def _csrf_token(config: StaffConfig, browser: str, action: str) -> str:
    return hmac.new(config.secret, f"{browser}|{action}".encode(), hashlib.sha256).hexdigest()


def _same_origin(request: Request) -> bool:
    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return False
        origin = referer
    parts = urlsplit(origin)
    return bool(host) and parts.netloc == host and parts.scheme in ("http", "https")


async def staff_form(request: Request) -> dict[str, str]:
    """The posted form, after the same-origin and per-form token checks."""
    config = _config(request)
    if not _same_origin(request):
        raise ApiError(403, "cross_origin_post", "Forms must be posted from this server's pages.")
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise ApiError(413, "form_too_large", "The form is too large.")
    try:
        parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ApiError(400, "bad_form", "The form is not UTF-8.") from None
    form = {k: v[0] for k, v in parsed.items()}
    browser = request.cookies.get(CSRF_COOKIE, "")
    expected = _csrf_token(config, browser, request.url.path)
    if not browser or not hmac.compare_digest(form.get("csrf", ""), expected):
        raise ApiError(403, "csrf_token_invalid", "The form is stale; reload the page.")
    return form


FormDep = Annotated[dict[str, str], Depends(staff_form)]


# --- HTML ------------------------------------------------------------------------------------

_STYLE = """body{font-family:'WenQuanYi Micro Hei',sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;
text-align:left}th{background:#f3f3f3}.flag{color:#b00;font-weight:bold}.ok{color:#070}
footer{margin-top:2em;color:#666;font-size:90%}form.inline{display:inline}"""


class _Page:
    """Builds one page; knows the browser's CSRF cookie so each form gets its token."""

    def __init__(self, request: Request, config: StaffConfig) -> None:
        self.request = request
        self.config = config
        self.browser = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        self.new_browser = CSRF_COOKIE not in request.cookies

    def form(self, action: str, inner: str, button: str) -> str:
        token = _csrf_token(self.config, self.browser, action)
        return (f'<form class="inline" method="post" action="{escape(action)}">'
                f'<input type="hidden" name="csrf" value="{token}">{inner}'
                f'<button type="submit">{escape(button)}</button></form>')

    def render(self, title: str, body: str, status_code: int = 200) -> HTMLResponse:
        auth = ("staff token required" if self.config.token else
                "staff token OFF: anyone who can reach this server can act here "
                "(start the server with a staff token)")
        html = (f"<!doctype html><html lang=zh-CN><head><meta charset=utf-8>"
                f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
                f'<h1>{escape(title)}</h1><p><a href="/staff">办件</a> · '
                f'<a href="/staff/kiosks">自助终端</a> · <a href="/staff/ratings">好差评</a></p>'
                f"{body}<footer>Zizhu reference back office {escape(__version__)} · "
                f"{escape(auth)}</footer></body></html>")
        response = HTMLResponse(html, status_code=status_code, headers={
            "Cache-Control": "no-store", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'"})
        if self.new_browser:
            response.set_cookie(CSRF_COOKIE, self.browser, httponly=True, samesite="strict",
                                path="/staff")
        return response


def _time(value: dt.datetime | None, settings: Settings) -> str:
    return value.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M") if value else ""


def _mask(id_number: str) -> str:
    return id_number[:4] + "*" * max(0, len(id_number) - 8) + id_number[-4:]


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body or ''}</table>" if rows else "<p>（无）</p>"


# --- pages -----------------------------------------------------------------------------------

@router.get("/login")
def login_page(request: Request) -> Response:
    config = _config(request)
    page = _Page(request, config)
    if config.token is None or _authorised(request, config):
        return RedirectResponse("/staff", status_code=303)
    field = '<input type="password" name="token" autocomplete="current-password"> '
    return page.render("工作人员登录", page.form("/staff/login", field, "登录"))


@router.post("/login")
def login(request: Request, form: FormDep) -> Response:
    config = _config(request)
    given = form.get("token", "")
    if config.token is None or not hmac.compare_digest(given.encode(), config.token.encode()):
        page = _Page(request, config)
        return page.render("工作人员登录", "<p class=flag>令牌不正确。</p>" + page.form(
            "/staff/login", '<input type="password" name="token"> ', "登录"), 401)
    response = RedirectResponse("/staff", status_code=303)
    response.set_cookie(AUTH_COOKIE, config.token, httponly=True, samesite="strict",
                        path="/staff")
    return response


@router.get("")
def applications_page(request: Request, session: SessionDep, settings: SettingsDep,
                      department: str | None = None) -> Response:
    config = _config(request)
    if not _authorised(request, config):
        return RedirectResponse("/staff/login", status_code=303)
    page = _Page(request, config)
    query = (select(models.Application)
             .where(models.Application.status.in_(OPEN_STATUSES))
             .order_by(models.Application.department, models.Application.submitted_at))
    if department:
        query = query.where(models.Application.department == department)
    by_department: dict[str, list[models.Application]] = defaultdict(list)
    for application in session.scalars(query):
        by_department[application.department].append(application)
    departments = session.scalars(select(models.Application.department).distinct()
                                  .order_by(models.Application.department))
    links = " · ".join(f'<a href="/staff?department={quote(d)}">{escape(d)}</a>'
                       for d in departments)
    parts = [f'<p>部门：<a href="/staff">全部</a> · {links}</p>']
    for name, applications in by_department.items():
        rows = [[f'<a href="/staff/applications/{quote(a.tracking_number)}">'
                 f"{escape(a.tracking_number)}</a>", escape(a.service_name),
                 escape(STATUS_NAMES.get(a.status, a.status)), _time(a.submitted_at, settings),
                 escape(a.kiosk_id or "窗口")] for a in applications]
        parts.append(f"<h2>{escape(name)}（{len(applications)}）</h2>"
                     + _table(["办件编号", "事项", "状态", "提交时间", "来源"], rows))
    if not by_department:
        parts.append("<p>没有待处理的办件。</p>")
    return page.render("办件（待处理）", "".join(parts))


def _application_or_404(session: SessionDep, number: str) -> models.Application:
    application = session.get(models.Application, number)
    if application is None:
        raise ApiError(404, "application_not_found", "No application has this number.")
    return application


NumberPath = Annotated[str, Path(pattern=CODE_PATTERN)]


@router.get("/applications/{number}")
def application_page(number: NumberPath, request: Request, session: SessionDep,
                     settings: SettingsDep, _staff: StaffDep) -> Response:
    page = _Page(request, _config(request))
    a = _application_or_404(session, number)
    base = f"/staff/applications/{quote(number)}"
    facts = [
        ["事项", escape(f"{a.service_name}（{a.service_item_code}）")],
        ["办理部门", escape(a.department)],
        ["状态", escape(STATUS_NAMES.get(a.status, a.status))],
        ["申请人", escape(a.applicant_name or "")],
        ["证件", escape(f"{a.applicant_document_type} {_mask(a.applicant_id_number)}")],
        ["提交", escape(f"{_time(a.submitted_at, settings)} {a.kiosk_id or '窗口'}")],
        ["本地编号", escape(a.local_tracking_number or "")],
        ["告知承诺", escape(f"{a.commitment_version or ''} {_time(a.commitment_signed_at, settings)}")],
        ["容缺后补", escape("、".join(a.deferred_materials or []) or "无")],
    ]
    facts_html = "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    facts_html += "</table>"
    form_rows = [[escape(str(k)), escape(str(v))] for k, v in (a.form or {}).items()]
    materials = [[escape(m.code), escape(m.media_type), f"{m.size:,}",
                  f'<a href="{base}/materials/{m.position}">下载</a>'] for m in a.materials]
    history = [[_time(e.at, settings), escape(STATUS_NAMES.get(e.step, e.step)),
                escape(e.department), escape(e.note)] for e in a.history]
    actions = []
    note = (f'<input name="note" maxlength="{MAX_NOTE_CHARS}" placeholder="意见（不写个人信息）"> ')
    for action, (label, sources, _target, _needs_note) in ACTIONS.items():
        if a.status in sources:
            actions.append(page.form(f"{base}/actions/{action}", note, label))
    result = (f'<p><a href="{base}/result">下载办理结果（PDF）</a></p>'
              if a.status in ("ready", "collected") else "")
    body = (facts_html + "<h2>表单</h2>" + _table(["字段", "内容"], form_rows)
            + "<h2>申请材料</h2>" + _table(["材料", "类型", "字节", ""], materials)
            + "<h2>办理过程</h2>" + _table(["时间", "环节", "部门", "意见"], history)
            + "<h2>办理</h2>" + ("<br>".join(actions) or "<p>无可用操作。</p>") + result)
    return page.render(f"办件 {number}", body)


@router.get("/applications/{number}/materials/{position}")
def download_material(number: NumberPath, position: int, session: SessionDep,
                      _staff: StaffDep) -> Response:
    material = session.scalar(select(models.ApplicationMaterial).where(
        models.ApplicationMaterial.tracking_number == number,
        models.ApplicationMaterial.position == position))
    if material is None:
        raise ApiError(404, "material_not_found", "This application has no such material.")
    extension = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}.get(
        material.media_type, "bin")
    return Response(material.content, media_type=material.media_type, headers={
        "Content-Disposition": f'attachment; filename="{number}-{position}-{material.code}'
                               f'.{extension}"',
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


@router.get("/applications/{number}/result")
def download_result(number: NumberPath, session: SessionDep, settings: SettingsDep,
                    _staff: StaffDep) -> Response:
    from backoffice.submissions import ensure_result_document

    a = _application_or_404(session, number)
    if a.status not in ("ready", "collected"):
        raise ApiError(409, "not_ready", "The result is not ready.")
    content = ensure_result_document(a, settings)
    session.commit()
    return Response(content, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{number}-result.pdf"',
        "Cache-Control": "no-store"})


@router.post("/applications/{number}/actions/{action}")
def act(number: NumberPath, action: str, form: FormDep, session: SessionDep,
        settings: SettingsDep, _staff: StaffDep) -> Response:
    a = _application_or_404(session, number)
    apply_action(a, action, form.get("note", ""), settings)
    session.commit()
    return RedirectResponse(f"/staff/applications/{quote(number)}", status_code=303)


def apply_action(a: models.Application, action: str, note: str, settings: Settings) -> None:
    """Move ``a`` on by a staff decision, recording the step; ApiError if not allowed."""
    if action not in ACTIONS:
        raise ApiError(404, "unknown_action", "No such action.")
    _label, sources, target, needs_note = ACTIONS[action]
    note = note.strip()[:MAX_NOTE_CHARS]
    if a.status not in sources:
        raise ApiError(409, "action_not_allowed",
                       f"An application in status {a.status} cannot be moved by {action}.")
    if needs_note and not note:
        raise ApiError(422, "note_required", "This decision needs a note for the applicant.")
    now = settings.now()
    a.status = ApplicationStatus(target).value
    a.updated_at = now
    a.note = note
    if target == "collected":
        a.collected_at = now
    if target == "ready":
        a.ready_at = now
        a.result_title = a.result_title or a.service_name
        a.result_content = render_result_document(a, settings)
        a.result_media_type = "application/pdf"
    a.history.append(models.ApplicationEvent(at=now, step=target, department=a.department,
                                             note=note))


@router.get("/kiosks")
def kiosks_page(request: Request, session: SessionDep, settings: SettingsDep,
                _staff: StaffDep) -> Response:
    page = _Page(request, _config(request))
    rows = []
    for k in list_kiosks(session, settings, stale_after(request)):
        devices = "<br>".join(
            escape(f"{d.device_id}: {d.state.value}" + (f" 纸:{d.paper.value}" if d.paper else ""))
            for d in k.devices)
        flags = (f'<span class="flag">{escape(" ".join(k.flags))}</span>' if k.flags
                 else '<span class="ok">正常</span>')
        age = "" if k.outbox.oldest_age_s is None else f"{k.outbox.oldest_age_s:.0f} s"
        rows.append([escape(k.kiosk_id), escape(k.centre_id), escape(k.software_version),
                     _time(k.received_at, settings), devices,
                     f"{k.outbox.depth} / {k.outbox.quarantined} / {age}", flags])
    return page.render("自助终端", _table(
        ["终端", "中心", "版本", "最近心跳", "设备", "待发送 / 隔离 / 最早", "告警"], rows))


@router.get("/ratings")
def ratings_page(request: Request, session: SessionDep, settings: SettingsDep,
                 _staff: StaffDep) -> Response:
    page = _Page(request, _config(request))
    counts = dict(session.execute(select(models.Rating.level, func.count())
                                  .group_by(models.Rating.level)).all())
    summary = _table(["等级", "数量"], [[escape(LEVEL_NAMES[n]), str(counts.get(n, 0))]
                                       for n in (5, 4, 3, 2, 1)])
    labels = {code.value: label for code, (_group, label) in INDICATORS.items()}
    rows = [[_time(r.created_at, settings), escape(LEVEL_NAMES.get(r.level, str(r.level))),
             escape("、".join(labels.get(i, i) for i in r.indicators)),
             escape(r.comment), escape(r.tracking_number or r.session_id or ""),
             escape(r.kiosk_id)]
            for r in session.scalars(select(models.Rating)
                                     .order_by(models.Rating.id.desc()).limit(100))]
    return page.render("好差评", summary + "<h2>最近 100 条</h2>" + _table(
        ["时间", "评价", "差评指标", "意见", "办件/会话", "终端"], rows))


# --- the result document ---------------------------------------------------------------------

def render_result_document(a: models.Application, settings: Settings) -> bytes:
    """A one-page A4 PDF of the result (办理结果) with the CJK font embedded (DESIGN.md: CUPS
    loses the digits of non-embedded CID fonts)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    if "WQY" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("WQY", str(FONT_PATH), subfontIndex=0))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=True)
    pdf.setTitle(a.result_title or a.service_name)
    width, height = A4
    pdf.setFont("WQY", 22)
    pdf.drawCentredString(width / 2, height - 110, a.result_title or a.service_name)
    pdf.setFont("WQY", 12)
    lines = [
        f"办件编号：{a.tracking_number}",
        f"申请人：{a.applicant_name or '（窗口申请）'}",
        f"事项：{a.service_name}",
        f"办理部门：{a.department}",
        f"办结日期：{(a.ready_at or settings.now()).astimezone(settings.tz):%Y年%m月%d日}",
        f"说明：{a.note}" if a.note else "",
    ]
    y = height - 170
    for line in filter(None, lines):
        pdf.drawString(72, y, line)
        y -= 24
    pdf.setFont("WQY", 9)
    pdf.drawString(72, 60, "本文件由 Zizhu 参考后台生成，仅供演示，不具法律效力。")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
