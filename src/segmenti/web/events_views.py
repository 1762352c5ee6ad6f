"""Dashboard pages of issue 15: webhooks (create, showing the secret once; deliveries;
test; replay; delete), a segment's snapshots, and its history as a picture. Thin, over
the same services as the API; their templates live in `webhooks/`, `snapshots/` and
`segments/_history.html`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from segmenti import errors
from segmenti.forms import Params
from segmenti.http import ResourceId, database
from segmenti.membership.events import TYPES
from segmenti.paging import Page
from segmenti.segments import history, snapshots
from segmenti.segments import service as segments_service
from segmenti.settings import Settings
from segmenti.web import charts, sessions
from segmenti.web.i18n import N_
from segmenti.web.pages import page_language, pager, redirect, render
from segmenti.webhooks import forms as webhook_forms
from segmenti.webhooks import service as webhooks_service

router = APIRouter(include_in_schema=False)

Viewer = sessions.Viewer
signed_in = Depends(sessions.viewer)
posted = Depends(sessions.form_pairs)
HISTORY_DAYS = 90


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _page(request: Request) -> Page:
    query = request.query_params
    return Page.parse(query.get("page") or None, query.get("results_per_page") or None)


# -- webhooks -------------------------------------------------------------------------


@router.get("/webhooks")
def webhooks_list(request: Request, viewer: Viewer = signed_in) -> Response:
    page = _page(request)
    with database(request).read() as session:
        rows, total = webhooks_service.list_webhooks(session, user_id=viewer.user_id, page=page)
    return render(
        request,
        "webhooks/list.html",
        {
            "webhooks": rows,
            "pager": pager(request, page, total),
            "types": TYPES,
            "form": {},
            "chosen": [],
        },
        viewer=viewer,
    )


@router.post("/webhooks")
def webhooks_create(
    request: Request, viewer: Viewer = signed_in, pairs: list[tuple[str, str]] = posted
) -> Response:
    params = Params.from_pairs(pairs)
    settings = _settings(request)
    try:
        data = webhook_forms.webhook_input(params, creating=True)
        webhooks_service.check_input(data, settings)
        with database(request).write() as session:
            webhook_id, secret = webhooks_service.create_webhook(
                session, user_id=viewer.user_id, data=data, settings=settings
            )
    except errors.Invalid as error:
        with database(request).read() as session:
            rows, total = webhooks_service.list_webhooks(
                session, user_id=viewer.user_id, page=Page()
            )
        return render(
            request,
            "webhooks/list.html",
            {
                "webhooks": rows,
                "pager": pager(request, Page(), total),
                "types": TYPES,
                "form": dict(pairs),
                "chosen": params.many("events") or [],
                "error": error,
            },
            status_code=400,
            viewer=viewer,
        )
    # Shown on this page and never again: not put in the session's flash.
    return render(
        request,
        "webhooks/created.html",
        {"webhook_id": webhook_id, "secret": secret},
        status_code=201,
        viewer=viewer,
    )


@router.get("/webhooks/{webhook_id}")
def webhook_show(webhook_id: ResourceId, request: Request, viewer: Viewer = signed_in) -> Response:
    page = _page(request)
    with database(request).read() as session:
        webhook = webhooks_service.get_webhook(
            session, user_id=viewer.user_id, webhook_id=webhook_id
        )
        attempts, total = webhooks_service.list_attempts(
            session, user_id=viewer.user_id, webhook_id=webhook_id, page=page
        )
    return render(
        request,
        "webhooks/show.html",
        {"webhook": webhook, "attempts": attempts, "pager": pager(request, page, total)},
        viewer=viewer,
    )


@router.post("/webhooks/{webhook_id}/test")
def webhook_test(
    webhook_id: ResourceId,
    request: Request,
    viewer: Viewer = signed_in,
    _pairs: list[tuple[str, str]] = posted,
) -> Response:
    result = webhooks_service.send_test(
        database(request).read,
        user_id=viewer.user_id,
        webhook_id=webhook_id,
        settings=_settings(request),
    )
    # Flashed in English; web/messages.py's PATTERNS put the values into the page's
    # language when it is shown.
    if result["ok"]:
        said = f"answered {result['status_code']} in {result['duration_ms']} ms"
    else:
        said = (
            f"failed: status {result['status_code']}"
            if result["status_code"] is not None
            else f"failed: {result['error']}"
        )
    sessions.flash(request, f"Test event sent; the receiver {said}.")
    return redirect(f"/webhooks/{webhook_id}")


@router.post("/webhooks/{webhook_id}/replay")
def webhook_replay(
    webhook_id: ResourceId,
    request: Request,
    viewer: Viewer = signed_in,
    pairs: list[tuple[str, str]] = posted,
) -> Response:
    after = webhook_forms.event_id("after_event_id", dict(pairs).get("after_event_id"))
    with database(request).write() as session:
        webhooks_service.replay(
            session, user_id=viewer.user_id, webhook_id=webhook_id, after_event_id=after
        )
    sessions.flash(request, f"Events after {after} will be sent again.")
    return redirect(f"/webhooks/{webhook_id}")


@router.post("/webhooks/{webhook_id}/delete")
def webhook_delete(
    webhook_id: ResourceId,
    request: Request,
    viewer: Viewer = signed_in,
    _pairs: list[tuple[str, str]] = posted,
) -> Response:
    with database(request).write() as session:
        webhooks_service.delete_webhook(session, user_id=viewer.user_id, webhook_id=webhook_id)
    sessions.flash(request, N_("Webhook deleted."))
    return redirect("/webhooks")


# -- snapshots ------------------------------------------------------------------------


@router.get("/segments/{segment_id}/snapshots")
def snapshots_list(
    segment_id: ResourceId, request: Request, viewer: Viewer = signed_in
) -> Response:
    page = _page(request)
    with database(request).read() as session:
        segment = segments_service.get_segment(
            session, user_id=viewer.user_id, segment_id=segment_id
        )
        rows, total = snapshots.list_snapshots(
            session, user_id=viewer.user_id, segment_id=segment_id, page=page
        )
    return render(
        request,
        "snapshots/list.html",
        {"segment": segment, "snapshots": rows, "pager": pager(request, page, total)},
        viewer=viewer,
    )


@router.post("/segments/{segment_id}/snapshots")
def snapshots_take(
    segment_id: ResourceId,
    request: Request,
    viewer: Viewer = signed_in,
    _pairs: list[tuple[str, str]] = posted,
) -> Response:
    snapshot_id = snapshots.create_snapshot(
        database(request),
        user_id=viewer.user_id,
        segment_id=segment_id,
        settings=_settings(request),
    )
    sessions.flash(request, N_("Snapshot taken."))
    return redirect(f"/snapshots/{snapshot_id}")


@router.get("/snapshots/{snapshot_id}")
def snapshot_show(
    snapshot_id: ResourceId, request: Request, viewer: Viewer = signed_in
) -> Response:
    page = _page(request)
    with database(request).read() as session:
        snapshot = snapshots.get_snapshot(session, user_id=viewer.user_id, snapshot_id=snapshot_id)
        listed = snapshots.list_members(
            session, user_id=viewer.user_id, snapshot_id=snapshot_id, page=page
        )
    return render(
        request,
        "snapshots/show.html",
        {"snapshot": snapshot, "members": listed.rows, "pager": pager(request, page, listed.total)},
        viewer=viewer,
    )


@router.post("/snapshots/{snapshot_id}/delete")
def snapshot_delete(
    snapshot_id: ResourceId,
    request: Request,
    viewer: Viewer = signed_in,
    _pairs: list[tuple[str, str]] = posted,
) -> Response:
    with database(request).read() as session:
        segment_id = snapshots.get_snapshot(
            session, user_id=viewer.user_id, snapshot_id=snapshot_id
        )["segment_id"]
    snapshots.delete_snapshot(database(request), user_id=viewer.user_id, snapshot_id=snapshot_id)
    sessions.flash(request, N_("Snapshot deleted."))
    return redirect(f"/segments/{segment_id}/snapshots")


# -- history --------------------------------------------------------------------------


@router.get("/segments/{segment_id}/history.svg")
def history_chart(segment_id: ResourceId, request: Request, viewer: Viewer = signed_in) -> Response:
    with database(request).read() as session:
        rows = history.history(
            session, user_id=viewer.user_id, segment_id=segment_id, days=HISTORY_DAYS
        )
    language = page_language(request)
    picture = charts.history_svg(rows, days=HISTORY_DAYS, language=language)
    return Response(
        picture,
        media_type="image/svg+xml",
        headers={
            "Cache-Control": "no-store",
            "Content-Language": language.code,
            "Vary": "Accept-Language, Cookie",
        },
    )
