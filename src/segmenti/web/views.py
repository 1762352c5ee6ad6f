"""Dashboard routes: thin, like the API's, over the same services.

Each form builds the services' input itself (`forms.py`), through the checks the API's
fields go through, and its fields are named as the API's are: an error is shown next to
the field its `parameter` names, in the API's words.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from segmenti import errors, ratelimit
from segmenti.contacts import export, importer
from segmenti.contacts import service as contacts_service
from segmenti.contacts.upload import import_upload
from segmenti.forms import parse_choice
from segmenti.http import ResourceId, database
from segmenti.paging import Page
from segmenti.segments import members
from segmenti.segments import service as segments_service
from segmenti.settings import Settings
from segmenti.web import i18n, queries, sessions
from segmenti.web.forms import ContactForm, SegmentForm
from segmenti.web.i18n import N_
from segmenti.web.pages import local_path, pager, redirect, render

router = APIRouter(include_in_schema=False)

SUGGESTED_KEYS = 500  # parameter keys offered as a form's key field is typed

Viewer = sessions.Viewer
signed_in = Depends(sessions.viewer)
posted = Depends(sessions.form_pairs)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _page(request: Request) -> Page:
    """The page asked for. Every list page reads it first, so this is also where query
    strings with NUL characters are refused: PostgreSQL cannot compare text holding one."""
    query = request.query_params
    for name, value in query.multi_items():
        if "\x00" in name or "\x00" in value:
            raise errors.Invalid("the query string must not contain NUL characters")
    return Page.parse(query.get("page") or None, query.get("results_per_page") or None)


# -- signing in ---------------------------------------------------------------------


@router.get("/language/{code}")
def switch_language(code: str, request: Request) -> Response:
    """The language switcher: remembers the choice in a cookie and goes back to the page
    it was pressed on (a path of this site only). An unsupported code changes nothing."""
    response = redirect(local_path(request.query_params.get("next"), "/"))
    language = i18n.supported(code)
    if language is not None:
        response.set_cookie(
            i18n.COOKIE,
            language,
            max_age=i18n.COOKIE_DAYS * 24 * 3600,
            path="/",
            httponly=True,
            samesite="lax",
            secure=_settings(request).session_cookie_secure,
        )
    return response


@router.get("/")
def home(request: Request) -> Response:
    return redirect("/segments" if request.session.get("user_id") else "/sign-in")


@router.get("/sign-in")
def sign_in_page(request: Request) -> Response:
    return render(request, "sign_in.html", {"next": local_path(request.query_params.get("next"))})


@router.post("/sign-in")
def sign_in(request: Request, pairs: list[tuple[str, str]] = posted) -> Response:
    fields = dict(pairs)
    api_key = fields.get("api_key", "").strip()
    target = local_path(fields.get("next"))
    try:
        if not api_key:
            raise errors.Unauthorized(N_("enter an API key"), parameter="api_key")
        sessions.sign_in(request, database(request), api_key)
    except errors.Unauthorized as exc:
        # Only a failed attempt counts, against its address: others' failures never
        # keep a valid key out.
        ratelimit.charge_failure(request)
        exc.parameter = "api_key"
        return render(request, "sign_in.html", {"next": target, "error": exc}, status_code=401)
    return redirect(target)


@router.post("/sign-out")
def sign_out(request: Request, _pairs: list[tuple[str, str]] = posted) -> Response:
    sessions.sign_out(request)
    return redirect("/sign-in")


# -- segments -----------------------------------------------------------------------


@router.get("/segments")
def segments_list(request: Request, viewer: Viewer = signed_in) -> Response:
    page = _page(request)
    query = request.query_params
    search = (query.get("search") or "").strip()
    kind = parse_choice("type", query.get("type"), segments_service.TYPES, None)
    order_by = parse_choice(
        "order_by", query.get("order_by"), segments_service.ORDER_BY, "datetime"
    )
    order_type = parse_choice(
        "order_type", query.get("order_type"), segments_service.ORDER_TYPES, "desc"
    )
    filters_used = {"search": search, "type": kind, "order_by": order_by, "order_type": order_type}
    segments_service.dates_current(database(request), user_id=viewer.user_id)
    with database(request).read() as session:
        rows, total = segments_service.list_segments(
            session,
            user_id=viewer.user_id,
            page=page,
            order_by=order_by,
            order_type=order_type,
            type=kind,
            search=search or None,
        )
    return render(
        request,
        "segments/list.html",
        {"segments": rows, "pager": pager(request, page, total), "query": filters_used},
        viewer=viewer,
    )


def _segment_form_page(
    request: Request,
    viewer: Viewer,
    form: SegmentForm,
    *,
    segment: dict[str, Any] | None,
    error: errors.SegmentiError | None = None,
) -> HTMLResponse:
    with database(request).read() as session:
        keys = export.parameter_keys(session, user_id=viewer.user_id, limit=SUGGESTED_KEYS)
    preview = _preview(request, viewer, form)
    if error is None and preview.error is not None:
        error = preview.error  # shown next to its field, as a failed save would be
    return render(
        request,
        "segments/form.html",
        {
            "form": form,
            "segment": segment,
            "keys": keys,
            "preview": preview,
            "error": error,
            "max_conditions": _settings(request).max_filter_conditions,
            "max_leaves": _settings(request).max_filter_leaves,
        },
        status_code=error.status if error is not None and form.action == "save" else 200,
        viewer=viewer,
    )


def _preview(request: Request, viewer: Viewer, form: SegmentForm) -> queries.Preview:
    return queries.preview(database(request), _settings(request), user_id=viewer.user_id, form=form)


def _save_segment(
    request: Request,
    viewer: Viewer,
    pairs: list[tuple[str, str]],
    *,
    segment: dict[str, Any] | None,
) -> Response:
    """Create (segment None) or update from a posted form; the form's other buttons
    (add or remove a condition row, preview) re-render it without saving."""
    try:
        form = SegmentForm.from_pairs(pairs)
    except errors.Invalid as exc:
        return _segment_form_page(request, viewer, SegmentForm(), segment=segment, error=exc)
    if form.apply_row_action() or form.action == "preview":
        return _segment_form_page(request, viewer, form, segment=segment)
    try:
        data = form.to_input(_settings(request))
        db = database(request)

        def save(counted: segments_service.Precounted | None) -> int:
            with db.write() as session:
                if segment is None:
                    return segments_service.create_segment(
                        session, user_id=viewer.user_id, data=data, counted=counted
                    )
                return segments_service.update_segment(
                    session,
                    user_id=viewer.user_id,
                    segment_id=segment["id"],
                    data=data,
                    counted=counted,
                )

        segment_id = segments_service.counting_first(
            db, user_id=viewer.user_id, data=data, write=save
        )
    except (errors.Invalid, errors.Conflict, errors.ServiceUnavailable) as exc:
        return _segment_form_page(request, viewer, form, segment=segment, error=exc)
    sessions.flash(request, N_("Segment saved."))
    return redirect(f"/segments/{segment_id}")


@router.get("/segments/new")
def segment_new(request: Request, viewer: Viewer = signed_in) -> Response:
    kind = parse_choice("type", request.query_params.get("type"), segments_service.TYPES, "filter")
    return _segment_form_page(request, viewer, SegmentForm(type=kind), segment=None)


@router.post("/segments/new")
def segment_create(
    request: Request, viewer: Viewer = signed_in, pairs: list[tuple[str, str]] = posted
) -> Response:
    return _save_segment(request, viewer, pairs, segment=None)


@router.post("/segments/preview")
def segment_preview(
    request: Request, viewer: Viewer = signed_in, pairs: list[tuple[str, str]] = posted
) -> Response:
    """Internal to the dashboard: the count and first members of the segment being
    edited, as an HTML fragment that static/app.js swaps into the form."""
    try:
        preview = _preview(request, viewer, SegmentForm.from_pairs(pairs))
    except errors.Invalid as exc:  # a malformed row index
        preview = queries.Preview(error=exc)
    return render(request, "segments/_preview.html", {"preview": preview}, viewer=viewer)


def _load_segment(request: Request, viewer: Viewer, segment_id: int) -> dict[str, Any]:
    segments_service.dates_current(database(request), user_id=viewer.user_id)
    with database(request).read() as session:
        return segments_service.get_segment(session, user_id=viewer.user_id, segment_id=segment_id)


@router.get("/segments/{segment_id}")
def segment_show(segment_id: ResourceId, request: Request, viewer: Viewer = signed_in) -> Response:
    page = _page(request)
    segments_service.dates_current(database(request), user_id=viewer.user_id)
    with database(request).read() as session:
        segment = segments_service.get_segment(
            session, user_id=viewer.user_id, segment_id=segment_id
        )
        listed = members.list_members(
            session, user_id=viewer.user_id, segment_id=segment_id, page=page
        )
    return render(
        request,
        "segments/show.html",
        {
            "segment": segment,
            "definition": SegmentForm.from_segment(segment),
            "members": listed.rows,
            "pager": pager(request, page, listed.total),
        },
        viewer=viewer,
    )


@router.get("/segments/{segment_id}/edit")
def segment_edit(segment_id: ResourceId, request: Request, viewer: Viewer = signed_in) -> Response:
    segment = _load_segment(request, viewer, segment_id)
    return _segment_form_page(request, viewer, SegmentForm.from_segment(segment), segment=segment)


@router.post("/segments/{segment_id}/edit")
def segment_update(
    segment_id: ResourceId,
    request: Request,
    viewer: Viewer = signed_in,
    pairs: list[tuple[str, str]] = posted,
) -> Response:
    segment = _load_segment(request, viewer, segment_id)
    return _save_segment(request, viewer, pairs, segment=segment)


@router.get("/segments/{segment_id}/delete")
def segment_delete_page(
    segment_id: ResourceId, request: Request, viewer: Viewer = signed_in
) -> Response:
    segment = _load_segment(request, viewer, segment_id)
    return render(request, "segments/delete.html", {"segment": segment}, viewer=viewer)


@router.post("/segments/{segment_id}/delete")
def segment_delete(
    segment_id: ResourceId,
    request: Request,
    viewer: Viewer = signed_in,
    _pairs: list[tuple[str, str]] = posted,
) -> Response:
    with database(request).write() as session:
        segments_service.delete_segment(session, user_id=viewer.user_id, segment_id=segment_id)
    sessions.flash(request, N_("Segment deleted."))
    return redirect("/segments")


# -- contacts -----------------------------------------------------------------------


@router.get("/contacts")
def contacts_list(request: Request, viewer: Viewer = signed_in) -> Response:
    page = _page(request)
    search = (request.query_params.get("search") or "").strip()
    with database(request).read() as session:
        rows, total = contacts_service.list_contacts(
            session, user_id=viewer.user_id, page=page, search=search or None
        )
    return render(
        request,
        "contacts/list.html",
        {"contacts": rows, "pager": pager(request, page, total), "search": search},
        viewer=viewer,
    )


def _contact_form_page(
    request: Request,
    viewer: Viewer,
    form: ContactForm,
    *,
    contact: dict[str, Any] | None,
    error: errors.SegmentiError | None = None,
) -> HTMLResponse:
    with database(request).read() as session:
        keys = export.parameter_keys(session, user_id=viewer.user_id, limit=SUGGESTED_KEYS)
    return render(
        request,
        "contacts/form.html",
        {"form": form, "contact": contact, "keys": keys, "error": error},
        status_code=error.status if error is not None else 200,
        viewer=viewer,
    )


def _save_contact(
    request: Request,
    viewer: Viewer,
    pairs: list[tuple[str, str]],
    *,
    contact: dict[str, Any] | None,
) -> Response:
    try:
        form = ContactForm.from_pairs(pairs)
    except errors.Invalid as exc:
        return _contact_form_page(request, viewer, ContactForm(), contact=contact, error=exc)
    if form.apply_row_action():
        return _contact_form_page(request, viewer, form, contact=contact)
    try:
        data = form.to_input()
        with database(request).write() as session:
            if contact is None:
                contacts_service.create_contact(session, user_id=viewer.user_id, data=data)
            else:
                contacts_service.update_contact(
                    session, user_id=viewer.user_id, contact_id=contact["id"], data=data
                )
    except (errors.Invalid, errors.Conflict) as exc:
        return _contact_form_page(request, viewer, form, contact=contact, error=exc)
    sessions.flash(request, N_("Contact saved."))
    return redirect("/contacts")


def _load_contact(request: Request, viewer: Viewer, contact_id: int) -> dict[str, Any]:
    with database(request).read() as session:
        return contacts_service.get_contact(session, user_id=viewer.user_id, contact_id=contact_id)


@router.get("/contacts/new")
def contact_new(request: Request, viewer: Viewer = signed_in) -> Response:
    return _contact_form_page(request, viewer, ContactForm(), contact=None)


@router.post("/contacts/new")
def contact_create(
    request: Request, viewer: Viewer = signed_in, pairs: list[tuple[str, str]] = posted
) -> Response:
    return _save_contact(request, viewer, pairs, contact=None)


@router.get("/contacts/import")
def contacts_import(request: Request, viewer: Viewer = signed_in) -> Response:
    return render(request, "contacts/import.html", {}, viewer=viewer)


@router.post("/contacts/import")
async def contacts_import_upload(request: Request, viewer: Viewer = signed_in) -> Response:
    """The same import as `POST /api/contacts/import` and `segmenti contacts import`; the
    page shows its report: counts, committed batches and the first bad rows."""
    try:
        form = await request.form(max_files=1, max_fields=20)
    except (ValueError, KeyError, AssertionError) as exc:
        raise errors.Invalid(f"the form body could not be read: {exc}") from None
    try:
        token = form.get(sessions.CSRF_FIELD)
        sessions.check_form_token(request, token if isinstance(token, str) else "")
        upload = form.get("file")
        context: dict[str, Any] = {}
        if not isinstance(upload, UploadFile) or not upload.filename:
            context["error"] = errors.Invalid(N_("choose a CSV file to import"), parameter="file")
        else:
            try:
                context["report"] = await run_in_threadpool(
                    import_upload,
                    database(request),
                    user_id=viewer.user_id,
                    upload=upload.file,
                    strict=form.get("strict") == "1",
                )
            except importer.ImportStopped as exc:
                context.update(error=exc, report=exc.report)
            except errors.Invalid as exc:
                context["error"] = exc
    finally:
        await form.close()
    status = 400 if "error" in context else 200
    return render(request, "contacts/import.html", context, viewer=viewer, status_code=status)


@router.get("/contacts/{contact_id}/edit")
def contact_edit(contact_id: ResourceId, request: Request, viewer: Viewer = signed_in) -> Response:
    contact = _load_contact(request, viewer, contact_id)
    return _contact_form_page(request, viewer, ContactForm.from_contact(contact), contact=contact)


@router.post("/contacts/{contact_id}/edit")
def contact_update(
    contact_id: ResourceId,
    request: Request,
    viewer: Viewer = signed_in,
    pairs: list[tuple[str, str]] = posted,
) -> Response:
    contact = _load_contact(request, viewer, contact_id)
    return _save_contact(request, viewer, pairs, contact=contact)


@router.get("/contacts/{contact_id}/delete")
def contact_delete_page(
    contact_id: ResourceId, request: Request, viewer: Viewer = signed_in
) -> Response:
    contact = _load_contact(request, viewer, contact_id)
    return render(request, "contacts/delete.html", {"contact": contact}, viewer=viewer)


@router.post("/contacts/{contact_id}/delete")
def contact_delete(
    contact_id: ResourceId,
    request: Request,
    viewer: Viewer = signed_in,
    _pairs: list[tuple[str, str]] = posted,
) -> Response:
    with database(request).write() as session:
        contacts_service.delete_contact(session, user_id=viewer.user_id, contact_id=contact_id)
    sessions.flash(request, N_("Contact deleted."))
    return redirect("/contacts")
