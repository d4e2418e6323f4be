"""Glue between the kiosk and the screens: runs flow steps off the UI thread, renders each flow
view on the UI thread, owns navigation and the session countdown."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from kivy.clock import Clock
from kivy.uix.screenmanager import NoTransition, ScreenManager

from flows.apply import ApplyAction, ApplyFlow, ApplyStep, ApplyView, MaterialEntry, MaterialState
from flows.base import Flow
from flows.certificate import CertAction, CertificateFlow, CertificateView, CertStep
from flows.checkin import Action, CheckInFlow, CheckInView, Step
from flows.identify import CAMERA_MRZ_REFUSED, IdAction, IdentifyFlow, IdentifyView, IdStep
from flows.material_capture import CaptureAction
from flows.ports import RatingLevel
from flows.print_job import PrintAction, PrintStage, PrintView
from flows.query import QueryFlow, QueryStep, QueryView
from flows.rating import RateAction, RateStep, RatingFlow, RatingSubject, RatingView
from kiosk.services import AppState, ServiceId, app_state
from kiosk.session import EndReason, Session
from kiosk.ui import texts, theme
from kiosk.ui.apply_screens import (
    CommitmentScreen,
    ItemListScreen,
    MaterialsScreen,
    NoticeScreen,
    PhoneScreen,
    ReceiptScreen,
)
from kiosk.ui.identity_screens import (
    ApplicationsScreen,
    Buttons,
    IdentityScreen,
    MrzEntryScreen,
    PresentDocumentScreen,
)
from kiosk.ui.maintenance import MaintenanceController
from kiosk.ui.material_screens import MaterialCaptureScreen
from kiosk.ui.screens import (
    AttractScreen,
    BusyScreen,
    ConfirmScreen,
    HomeScreen,
    MessageScreen,
    ProblemScreen,
    ScanScreen,
    TicketScreen,
    TopBar,
)
from kiosk.ui.service_screens import RatingScreen, ResultsScreen, TakeScreen

if TYPE_CHECKING:
    from kiosk.app import Kiosk

log = logging.getLogger(__name__)


class Controller:
    def __init__(self, kiosk: Kiosk, manager: ScreenManager, top_bar: TopBar) -> None:
        self.kiosk = kiosk
        self._ = kiosk.i18n.gettext
        self.manager = manager
        manager.transition = NoTransition()
        self.top_bar = top_bar
        self.screens = {
            "attract": AttractScreen(name="attract"),
            "home": HomeScreen(name="home"),
            "scan": ScanScreen(name="scan"),
            "busy": BusyScreen(name="busy"),
            "confirm": ConfirmScreen(name="confirm"),
            "ticket": TicketScreen(name="ticket"),
            "problem": ProblemScreen(name="problem"),
            "message": MessageScreen(name="message"),
            "present": PresentDocumentScreen(name="present"),
            "mrz": MrzEntryScreen(name="mrz"),
            "identity": IdentityScreen(name="identity"),
            "applications": ApplicationsScreen(name="applications"),
            "items": ItemListScreen(name="items"),
            "notice": NoticeScreen(name="notice"),
            "materials": MaterialsScreen(name="materials"),
            "capture": MaterialCaptureScreen(name="capture"),
            "phone": PhoneScreen(name="phone"),
            "commitment": CommitmentScreen(name="commitment"),
            "receipt": ReceiptScreen(name="receipt"),
            "results": ResultsScreen(name="results"),
            "take": TakeScreen(name="take"),
            "rating": RatingScreen(name="rating"),
        }
        for screen in self.screens.values():
            manager.add_widget(screen)
        # One worker for the journey (its steps are sequential by nature) and one for calls
        # that must not wait behind a blocked scan, such as calling staff.
        self._journey = ThreadPoolExecutor(1, thread_name_prefix="journey")
        self._side = ThreadPoolExecutor(1, thread_name_prefix="side")
        # The camera's MRZ search runs beside the journey, whose thread the keypad needs.
        self._camera = ThreadPoolExecutor(1, thread_name_prefix="camera")
        self._mrz_scan: Future[None] | None = None
        self.flow: Flow[Any] | None = None
        self.session: Session | None = None
        self._countdown: int | None = None
        self._last_services: list[Any] | None = None
        # What the 好差评 button rates: the session's last transaction, else the visit.
        self._last_rated: RatingSubject | None = None
        kiosk.sessions.on_end(self._session_ended)
        kiosk.i18n.on_change(lambda _lang: self.rerender())
        self._rerender: Callable[[], None] = self.show_attract
        self.maintenance = MaintenanceController(kiosk, manager, on_exit=self.show_attract)
        self.maintenance.attach()

    # -- frame ------------------------------------------------------------------------------
    def tick(self, _dt: float = 0) -> None:
        """Twice a second: session countdown, clock, device-driven availability."""
        state = self.kiosk.sessions.tick()
        self._countdown = state.countdown
        self.render_top_bar()
        now = self.kiosk.now()
        if self.manager.current == "attract":
            self.screens["attract"].tick(now)
            out = self._out_of_service_reasons()
            if out != getattr(self, "_out_shown", None):
                self.show_attract()
        elif self.manager.current == "home":
            services = self.kiosk.availability()
            if services != self._last_services:
                self.show_home()

    def render_top_bar(self) -> None:
        self.top_bar.render(self._, self._centre_name(), self.kiosk.now(),
                            self.kiosk.i18n.language, self._countdown,
                            self.toggle_language, self.call_staff)

    def _centre_name(self) -> str:
        return self.kiosk.config.kiosk.centre_label

    def _show(self, name: str, rerender: Callable[[], None]) -> None:
        self._rerender = rerender
        if self.manager.current != name and self.manager.current in self.screens:
            self.screens[self.manager.current].hidden()
        self.manager.current = name

    def rerender(self) -> None:
        self.render_top_bar()
        self._rerender()

    def touched(self) -> None:
        self.kiosk.sessions.touch()

    # -- session ----------------------------------------------------------------------------
    def _out_of_service_reasons(self) -> list[str]:
        if message := self.maintenance.out_of_service_message():
            return [self._(message)]  # a technician took it out of service
        services = self.kiosk.availability()
        if app_state(services, False) is not AppState.UNAVAILABLE:
            return []
        reasons = {(_r.reason, _r.device) for _r in services if _r.service.implemented}
        return sorted(self._(r).format(device=self._(d)) for r, d in reasons)

    def show_attract(self) -> None:
        if self.maintenance.active:
            return
        self._out_shown = self._out_of_service_reasons()
        self.screens["attract"].render(self._, self._centre_name(), self.kiosk.now(),
                                       self._out_shown, self.start_session)
        self._show("attract", self.show_attract)

    def start_session(self) -> None:
        if self._out_of_service_reasons():
            return
        self.session = self.kiosk.start_session()
        self.show_home()

    def end_session(self, reason: EndReason = EndReason.COMPLETED) -> None:
        if self.flow is not None:
            self.flow.cancel()
        self.kiosk.sessions.end(reason)

    def _session_ended(self, _session: Session, _reason: EndReason) -> None:
        self.flow = None
        self._last_rated = None
        self.screens["mrz"].clear()
        self.screens["capture"].clear()
        self.screens["phone"].clear()
        self.session = None
        self._countdown = None
        Clock.schedule_once(lambda _dt: self.show_attract())

    def toggle_language(self) -> None:
        self.touched()
        self.kiosk.i18n.set_language("en" if self.kiosk.i18n.language != "en" else "zh_CN")

    # -- home -------------------------------------------------------------------------------
    def show_home(self) -> None:
        if self.flow is not None:
            self.flow.cancel()
            self.flow = None
        self._last_services = self.kiosk.availability()
        self.screens["home"].render(self._, self._last_services, self.open_service,
                                    lambda: self.end_session(EndReason.COMPLETED))
        self._show("home", self.show_home)

    def open_service(self, service: str) -> None:
        if self.session is None:
            return
        if service == ServiceId.CHECKIN:
            self.start_checkin()
        elif service == ServiceId.QUERY:
            self.start_query()
        elif service in (ServiceId.APPLY, ServiceId.GUIDE):
            self.start_apply(str(service))
        elif service == ServiceId.CERTIFICATE:
            self.start_certificate()
        elif service == ServiceId.RATING:
            self.start_rating(self._last_rated or RatingSubject(self.session.id))

    # -- check-in ---------------------------------------------------------------------------
    def start_checkin(self) -> None:
        assert self.session is not None
        flow = self.kiosk.checkin_flow(self.session)
        self.flow = flow
        flow.on_change(lambda view: Clock.schedule_once(
            lambda _dt: self.render_checkin(flow, view)))
        self._run(flow.scan)

    def _run(self, step: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                step()
            except Exception:  # a bug in a step must leave the citizen a way back
                log.exception("journey step failed")
                Clock.schedule_once(lambda _dt: self.show_internal_error())

        self._journey.submit(guarded)

    def render_checkin(self, flow: CheckInFlow, view: CheckInView) -> None:
        if flow is not self.flow:
            return  # a late update from a journey the citizen already left
        _ = self._
        if view.step is Step.SCAN:
            self.screens["scan"].render(_, on_back=self.leave_journey,
                                        camera=self.kiosk.scanner_camera())
            self._show("scan", lambda: self.render_checkin(flow, flow.view))
        elif view.step in texts.BUSY:
            self.screens["busy"].render(_(texts.BUSY[view.step]))
            self._show("busy", lambda: self.render_checkin(flow, flow.view))
        elif view.step is Step.CONFIRM and view.appointment is not None:
            self.screens["confirm"].render(_, view.appointment,
                                           on_confirm=lambda: self._run(flow.confirm),
                                           on_back=self.leave_journey)
            self._show("confirm", lambda: self.render_checkin(flow, flow.view))
        elif view.step is Step.TAKE_TICKET and view.ticket is not None:
            self.screens["ticket"].render(_, view.ticket, on_done=flow.taken)
            self._show("ticket", lambda: self.render_checkin(flow, flow.view))
        elif view.step is Step.DONE:
            self.end_session(EndReason.COMPLETED)
        elif view.step is Step.FAILED and view.problem is not None:
            title, message = texts.PROBLEMS[view.problem]
            message = _(message).format(detail=view.detail)
            if view.detail in texts.PRINT_ERRORS:
                message = _(texts.PRINT_ERRORS[view.detail]) + " " + message
            if view.staff_reference:
                message += " " + _(texts.KEPT_FOR_STAFF).format(reference=view.staff_reference)
            actions = [(str(a), _(texts.ACTIONS[a]), self._action(flow, a)) for a in view.actions]
            self.screens["problem"].render(_, _(title), message, view.ticket, actions)
            self._show("problem", lambda: self.render_checkin(flow, flow.view))
        elif view.step is Step.CANCELLED:
            if self.session is not None:
                self.show_home()

    def _action(self, flow: CheckInFlow, action: Action) -> Callable[[], None]:
        return {
            Action.SCAN_AGAIN: lambda: self._run(flow.scan),
            Action.RETRY: lambda: self._run(flow.retry),
            Action.RETRY_PRINT: lambda: self._run(flow.retry_print),
            Action.HOME: self.leave_journey,
            Action.CALL_STAFF: self.call_staff,
        }[action]

    # -- progress query (identify, then the applications) ------------------------------------
    def start_query(self) -> None:
        assert self.session is not None
        flow = self.kiosk.query_flow(self.session)
        self.flow = flow
        self.screens["mrz"].clear()
        flow.on_change(lambda view: Clock.schedule_once(
            lambda _dt: self.render_query(flow, view)))
        self._run(flow.start)

    def render_query(self, flow: QueryFlow, view: QueryView) -> None:
        if flow is not self.flow:
            return
        _ = self._

        def again() -> None:
            self.render_query(flow, flow.view)

        if view.step is QueryStep.IDENTIFY and view.identify is not None:
            self.render_identify(flow.identify, view.identify, on_continue=flow.lookup,
                                 again=again)
        elif view.step is QueryStep.LOOKING_UP:
            self.screens["busy"].render(_("Looking up your applications…"))
            self._show("busy", again)
        elif view.step is QueryStep.RESULTS:
            buttons = [("home", _("Back to services"), self.leave_journey)]
            if view.can_print:
                label = _("Printed — print again") if view.printed else _("Print the progress")
                buttons.append(("print_progress", label,
                                lambda: self._run(flow.print_progress)))
            buttons.append(("finish", _("Finish"),
                            lambda: self.end_session(EndReason.COMPLETED)))
            self.screens["applications"].render(
                _, view.applications, lambda a: _(texts.APPLICATION_STATUS[a.status]), buttons)
            self._show("applications", again)
        elif view.step is QueryStep.PRINTING and view.print is not None:
            self._render_print(view.print, {
                PrintAction.RETRY_PRINT: lambda: self._run(flow.retry_print),
                PrintAction.TAKEN: lambda: self._run(flow.taken),
                PrintAction.BACK: lambda: self._run(flow.back),
                PrintAction.CALL_STAFF: self.call_staff,
                PrintAction.HOME: self.leave_journey}, again,
                _("Please take your progress slip"))
        elif view.step is QueryStep.FAILED and view.problem is not None:
            title, message = texts.QUERY_PROBLEMS[view.problem]
            self.screens["problem"].render(_, _(title), _(message), None, [
                ("retry", _("Try again"), lambda: self._run(flow.lookup)),
                ("home", _("Back to services"), self.leave_journey)])
            self._show("problem", again)
        elif view.step is QueryStep.CANCELLED and self.session is not None:
            self.show_home()

    # -- 办事指南 and 自助申报 ------------------------------------------------------------------
    def start_apply(self, purpose: str) -> None:
        assert self.session is not None
        flow = self.kiosk.apply_flow(self.session, purpose)
        self.flow = flow
        self.screens["mrz"].clear()
        self.screens["phone"].clear()
        flow.on_change(lambda view: Clock.schedule_once(
            lambda _dt: self.render_apply(flow, view)))
        self._run(flow.start)

    def render_apply(self, flow: ApplyFlow, view: ApplyView) -> None:
        if flow is not self.flow:
            return
        _ = self._

        def again() -> None:
            self.render_apply(flow, flow.view)

        home = ("home", _("Back to services"), self.leave_journey)
        if view.step in texts.APPLY_BUSY:
            self.screens["busy"].render(_(texts.APPLY_BUSY[view.step]))
            self._show("busy", again)
        elif view.step is ApplyStep.CHOOSE_ITEM:
            title = _("Apply") if flow.purpose == "apply" else _("Service guide")
            self.screens["items"].render(_, title, view.items,
                                         lambda code: self._run(lambda: flow.choose(code)),
                                         [home])
            self._show("items", again)
        elif view.step is ApplyStep.NOTICE and view.item is not None:
            self._render_notice(flow, view)
            self._show("notice", again)
        elif view.step is ApplyStep.IDENTIFY and view.identify is not None:
            self.render_identify(flow.identify, view.identify, on_continue=flow.identified,
                                 again=again)
        elif view.step is ApplyStep.MATERIALS and view.item is not None:
            self.screens["materials"].render(
                _, view.item.name, view.materials, self._material_state,
                lambda entry: self._material_buttons(flow, entry),
                [("back", _("Cancel application"), self.leave_journey),
                 ("continue", _("Continue"), lambda: self._run(flow.materials_done))],
                view.can_continue)
            self._show("materials", again)
        elif view.step is ApplyStep.CAPTURE and view.capture is not None:
            self._render_capture(flow, view)
        elif view.step is ApplyStep.CONTACT:
            error = _(texts.PHONE_INVALID) if view.detail == "invalid_phone" else ""
            self.screens["phone"].render(
                _, error, lambda phone: self._run(lambda: flow.set_phone(phone)),
                [("back", _("Back"), lambda: self._run(flow.back_to_materials))])
            self._show("phone", again)
        elif view.step is ApplyStep.COMMITMENT and view.item is not None:
            self.screens["commitment"].render(
                _, view.item.name, _(texts.COMMITMENT),
                [("back", _("Back"), lambda: self._run(flow.back_to_materials)),
                 ("commit", _("I promise — submit"), lambda: self._run(flow.commit))])
            self._show("commitment", again)
        elif view.step in (ApplyStep.TAKE_RECEIPT, ApplyStep.DONE) and view.receipt is not None:
            delivery = _(texts.DELIVERED if view.receipt.tracking_number else texts.PENDING)
            take = _(texts.TAKE_RECEIPT) if view.step is ApplyStep.TAKE_RECEIPT else ""
            assert self.session is not None and view.item is not None
            rated = RatingSubject(self.session.id, view.receipt.number, view.item.code,
                                  view.item.name)
            self._last_rated = rated
            self.screens["receipt"].render(
                _, view.receipt, delivery, take,
                [("finish", _("Finish"), lambda: self.end_session(EndReason.COMPLETED)),
                 ("rate", _("Rate this service"), lambda: self.start_rating(rated)),
                 ("home", _("Back to services"), self.leave_journey)])
            self._show("receipt", again)
        elif view.step is ApplyStep.FAILED and view.problem is not None:
            title, message = texts.APPLY_PROBLEMS[view.problem]
            detail = view.receipt.number if view.receipt is not None else view.detail
            message = _(message).format(detail=detail)
            if view.staff_reference:
                message += " " + _(texts.KEPT_FOR_STAFF).format(reference=view.staff_reference)
            actions = [(str(a), _(texts.APPLY_ACTIONS[a]), self._apply_action(flow, a))
                       for a in view.actions]
            self.screens["problem"].render(_, _(title), message, None, actions)
            self._show("problem", again)
        elif view.step is ApplyStep.CANCELLED and self.session is not None:
            self.show_home()

    def _render_notice(self, flow: ApplyFlow, view: ApplyView) -> None:
        _ = self._
        assert view.item is not None
        buttons: list[tuple[str, str, Callable[[], None]]] = [
            ("back", _("Other services"), lambda: self._run(flow.back_to_items))]
        if flow.notice_printer is not None:
            label = {"notice_printed": _("Printed — print again"),
                     "notice_failed": _("Printing failed — try again"),
                     "printer_unavailable": _("Printer unavailable")}.get(view.detail,
                                                                          _("Print this notice"))
            buttons.append(("print_notice", label, lambda: self._run(flow.print_notice)))
        if flow.purpose == "apply":
            buttons.append(("continue", _("Apply now"), lambda: self._run(flow.begin)))
        self.screens["notice"].render(_, view.item, lambda r: _(texts.REQUIREMENTS.get(r, r)),
                                      buttons)

    def _material_state(self, entry: MaterialEntry) -> str:
        return self._(texts.MATERIAL_STATES[entry.state]).format(pages=entry.pages) + \
            "  ·  " + self._(texts.REQUIREMENTS.get(entry.requirement, entry.requirement))

    def _material_buttons(self, flow: ApplyFlow, entry: MaterialEntry) -> Buttons:
        _ = self._
        code = entry.code
        if entry.state is MaterialState.MISSING:
            buttons = [(f"capture:{code}", _("Photograph"),
                        lambda: self._run(lambda: self._start_capture(flow, code)))]
            if entry.requirement == "deferrable":
                buttons.append((f"defer:{code}", _("Bring later"),
                                lambda: self._run(lambda: flow.defer(code))))
            if entry.requirement == "optional":
                buttons.append((f"skip:{code}", _("I don't have it"),
                                lambda: self._run(lambda: flow.skip(code))))
            return buttons
        label = _("Photograph again") if entry.state is MaterialState.CAPTURED else _("Undo")
        return [(f"undo:{code}", label, lambda: self._run(lambda: flow.reset_material(code)))]

    def _start_capture(self, flow: ApplyFlow, code: str) -> None:
        capture = flow.capture(code)
        camera = flow.camera
        if capture is not None and camera is not None:
            timeout = flow.settings.capture_timeout_s
            self._camera.submit(lambda: capture.watch(camera, timeout))

    def _render_capture(self, flow: ApplyFlow, view: ApplyView) -> None:
        _ = self._
        capture_view, capture = view.capture, flow.capture_flow
        if capture_view is None or capture is None or flow.camera is None:
            return
        do: dict[CaptureAction, Callable[[], None]] = {
            CaptureAction.CAPTURE: lambda: self._run(capture.capture_now),
            CaptureAction.RETAKE: lambda: self._run(capture.retake),
            CaptureAction.ADD_PAGE: lambda: self._run(capture.add_page),
            CaptureAction.FINISH: lambda: self._run(flow.capture_finished),
        }
        buttons = [("back", _("Cancel"), lambda: self._run(flow.capture_abandoned))]
        buttons += [(str(a), _(texts.CAPTURE_ACTIONS[a]), do[a]) for a in capture_view.actions]
        guidance = _(texts.GUIDANCE[capture_view.guidance]) if capture_view.guidance else ""
        problem = _(texts.CAPTURE_PROBLEMS[capture_view.problem]) if capture_view.problem \
            else ""
        self.screens["capture"].render(_, capture_view, flow.camera, guidance, problem, buttons)
        self._show("capture", lambda: self.render_apply(flow, flow.view))

    def _apply_action(self, flow: ApplyFlow, action: ApplyAction) -> Callable[[], None]:
        return {
            ApplyAction.RETRY: lambda: self._run(flow.retry),
            ApplyAction.REPRINT: lambda: self._run(flow.reprint),
            ApplyAction.HOME: self.leave_journey,
            ApplyAction.CALL_STAFF: self.call_staff,
            ApplyAction.FINISH: lambda: self._run(flow.finish),
        }[action]

    # -- a print that waits for the paper to be taken ----------------------------------------
    def _render_print(self, view: PrintView, actions: dict[PrintAction, Callable[[], None]],
                      again: Callable[[], None], taking: str) -> None:
        _ = self._
        buttons = [(str(a), _(texts.PRINT_ACTIONS[a]), actions.get(a, self.leave_journey))
                   for a in view.actions]
        if view.stage is PrintStage.PRINTING:
            self.screens["busy"].render(_("Printing, please wait…"))
            self._show("busy", again)
        elif view.stage is PrintStage.TAKE:
            self.screens["take"].render(taking, _("Please take it from the slot below."),
                                        buttons)
            self._show("take", again)
        elif view.stage is PrintStage.FAILED and view.problem is not None:
            title, message = texts.PRINT_PROBLEMS[view.problem]
            detail = view.staff_reference or view.detail
            self.screens["problem"].render(_, _(title), _(message).format(detail=detail), None,
                                           buttons)
            self._show("problem", again)

    # -- 自助出件 -----------------------------------------------------------------------------
    def start_certificate(self) -> None:
        assert self.session is not None
        flow = self.kiosk.certificate_flow(self.session)
        self.flow = flow
        self.screens["mrz"].clear()
        flow.on_change(lambda view: Clock.schedule_once(
            lambda _dt: self.render_certificate(flow, view)))
        self._run(flow.start)

    def render_certificate(self, flow: CertificateFlow, view: CertificateView) -> None:
        if flow is not self.flow:
            return
        _ = self._

        def again() -> None:
            self.render_certificate(flow, flow.view)

        do = {CertAction.RETRY: lambda: self._run(flow.retry),
              CertAction.PRINT_ALL: lambda: self._run(flow.print_all),
              CertAction.CALL_STAFF: self.call_staff, CertAction.HOME: self.leave_journey}
        buttons = [(str(a), _(texts.CERT_ACTIONS[a]), do[a]) for a in view.actions if a in do]
        if view.step is CertStep.IDENTIFY and view.identify is not None:
            self.render_identify(flow.identify, view.identify, on_continue=flow.lookup,
                                 again=again)
        elif view.step is CertStep.LOOKING_UP:
            self.screens["busy"].render(_("Looking up your results…"))
            self._show("busy", again)
        elif view.step is CertStep.NONE_READY:
            self.screens["message"].render(
                _("Nothing is ready for you yet"),
                _("No certificate is waiting to be printed for this document. You can follow "
                  "your applications with \"Track an application\"."),
                _("Back to services"), self.leave_journey)
            self._show("message", again)
        elif view.step in (CertStep.CHOOSE, CertStep.DONE):
            if view.step is CertStep.DONE and self.session is not None and view.results:
                last = view.results[-1]
                self._last_rated = RatingSubject(self.session.id, last.tracking_number,
                                                 service_name=last.service_name)
            extra = [("rate", _("Rate this service"),
                      lambda: self.start_rating(self._last_rated))] \
                if view.step is CertStep.DONE and self._last_rated else []
            self.screens["results"].render(
                _, view.results, lambda n: self._run(lambda: flow.print_one(n)),
                [*buttons, *extra, ("finish", _("Finish"),
                                    lambda: self.end_session(EndReason.COMPLETED))])
            self._show("results", again)
        elif view.step is CertStep.PRINTING and view.print is not None:
            title = view.current.result_title if view.current else ""
            self._render_print(view.print, {
                PrintAction.RETRY_PRINT: lambda: self._run(flow.retry_print),
                PrintAction.TAKEN: lambda: self._run(flow.taken),
                PrintAction.CALL_STAFF: self.call_staff,
                PrintAction.HOME: self.leave_journey}, again,
                _("Please take your certificate") + (f"：{title}" if title else ""))
        elif view.step is CertStep.FAILED and view.problem is not None:
            title, message = texts.CERT_PROBLEMS[view.problem]
            self.screens["problem"].render(_, _(title), _(message), None, buttons)
            self._show("problem", again)
        elif view.step is CertStep.CANCELLED and self.session is not None:
            self.show_home()

    # -- 好差评 -------------------------------------------------------------------------------
    def start_rating(self, subject: RatingSubject | None) -> None:
        if self.session is None:
            return
        if self.flow is not None:
            self.flow.cancel()
        flow = self.kiosk.rating_flow(self.session, subject)
        self.flow = flow
        self._chosen_reasons: set[str] = set()
        flow.on_change(lambda view: Clock.schedule_once(
            lambda _dt: self.render_rating(flow, view)))
        self._run(flow.start)

    def render_rating(self, flow: RatingFlow, view: RatingView) -> None:
        if flow is not self.flow:
            return
        _ = self._

        def again() -> None:
            self.render_rating(flow, flow.view)

        def toggle(code: str) -> None:
            self._chosen_reasons ^= {code}
            again()

        def level(chosen: RatingLevel) -> None:
            self._chosen_reasons = set()
            self._run(lambda: flow.choose_level(chosen))

        do = {RateAction.RETRY: lambda: self._run(flow.retry),
              RateAction.BACK: lambda: self._run(flow.back), RateAction.HOME: self.leave_journey}
        if view.step in (RateStep.CHOOSE_LEVEL, RateStep.DETAILS):
            name = view.subject.service_name or _("your visit today")
            buttons = [("home", _("Back to services"), self.leave_journey)]
            if view.step is RateStep.DETAILS:
                buttons.append(("submit_rating", _("Send"), lambda: self._run(
                    lambda: flow.submit(tuple(sorted(self._chosen_reasons))))))
            self.screens["rating"].render(
                _, _("Your rating of {name}").format(name=name),
                [(lv, _(texts.RATING_LEVELS[lv])) for lv in sorted(RatingLevel, reverse=True)],
                view.level, level, view.indicators, self._chosen_reasons, toggle,
                _(texts.RATE_REASONS[view.detail]) if view.detail in texts.RATE_REASONS else "",
                buttons)
            self._show("rating", again)
        elif view.step is RateStep.SENDING:
            self.screens["busy"].render(_("Sending your rating…"))
            self._show("busy", again)
        elif view.step is RateStep.SENT:
            self.screens["message"].render(
                _("Thank you for your rating"),
                _("It helps the service centre improve. 12345 takes complaints at any time."),
                _("Finish"), lambda: self.end_session(EndReason.COMPLETED), colour=theme.GREEN)
            self._show("message", again)
        elif view.step is RateStep.FAILED and view.problem is not None:
            title, message = texts.RATE_PROBLEMS[view.problem]
            self.screens["problem"].render(
                _, _(title), _(message), None,
                [(str(a), _(texts.RATE_ACTIONS[a]), do[a]) for a in view.actions])
            self._show("problem", again)
        elif view.step is RateStep.CANCELLED and self.session is not None:
            self.show_home()

    # -- identify (any journey that needs to know who the citizen is) -----------------------
    def render_identify(self, flow: IdentifyFlow, view: IdentifyView,
                        on_continue: Callable[[], None], again: Callable[[], None]) -> None:
        _ = self._
        buttons = [(str(a), _(texts.ID_ACTIONS[a]), self._id_action(flow, a, on_continue))
                   for a in view.actions]
        if view.step is IdStep.PRESENT_ID_CARD:
            self.screens["present"].render(
                _("Place your ID card on the reader"),
                _("Lay your resident ID card flat on the reader below the screen and leave it "
                  "there until it has been read."), buttons)
            self._show("present", again)
        elif view.step is IdStep.PRESENT_CHIP:
            self.screens["present"].render(
                _("Place your passport on the reader"),
                _("Open it at the photo page and lay it face down on the reader; a travel "
                  "permit card lies flat."), buttons)
            self._show("present", again)
        elif view.step is IdStep.ENTER_MRZ:
            if view.detail == CAMERA_MRZ_REFUSED:
                error = _("The chip did not accept what the camera read. Please type the "
                          "fields from the photo page.")
            elif view.detail:
                # The flow's reason is technical English (which check digit failed); the
                # citizen needs to know what to look at again.
                error = _("Please check the number and the dates against the photo page.")
            else:
                error = ""

            def submit(number: str, birth: str, expiry: str) -> None:
                flow.stop_mrz_scan()  # the camera's thread lets go before the typed read
                self._run(lambda: flow.submit_mrz(number, birth, expiry))

            self.screens["mrz"].render(_, error, submit, buttons,
                                       camera=flow.camera if view.camera_mrz else None)
            self._show("mrz", again)
            if view.camera_mrz and (self._mrz_scan is None or self._mrz_scan.done()):
                self._mrz_scan = self._camera.submit(flow.scan_mrz)
        elif view.step is IdStep.READING:
            self.screens["busy"].render(_("Reading your document. Please do not move it."))
            self._show("busy", again)
        elif view.step is IdStep.IDENTIFIED and view.summary is not None:
            summary = view.summary
            self.screens["identity"].render(
                _, summary, _(texts.DOCUMENT_TITLES[summary.document_type]),
                _("No photo: this reader cannot show it"),
                _(texts.AUTHENTICITY[summary.authenticity]), buttons)
            self._show("identity", again)
        elif view.step is IdStep.FAILED and view.problem is not None:
            title, message = texts.ID_PROBLEMS[view.problem]
            self.screens["problem"].render(_, _(title), _(message).format(detail=view.detail),
                                           None, buttons)
            self._show("problem", again)
        elif view.step is IdStep.CANCELLED and self.session is not None:
            self.show_home()

    def _id_action(self, flow: IdentifyFlow, action: IdAction,
                   on_continue: Callable[[], None]) -> Callable[[], None]:
        def use_id_card() -> None:
            flow.use_id_card()
            self._run(flow.start)

        return {
            IdAction.TRY_AGAIN: lambda: self._run(flow.retry),
            IdAction.USE_PASSPORT: flow.use_passport,
            IdAction.USE_ID_CARD: use_id_card,
            IdAction.ENTER_MRZ_AGAIN: flow.enter_mrz_again,
            IdAction.CONTINUE: lambda: self._run(on_continue),
            IdAction.HOME: self.leave_journey,
            IdAction.CALL_STAFF: self.call_staff,
        }[action]

    def leave_journey(self) -> None:
        """Back to the services; a scan waiting for a code is cancelled."""
        self.show_home()

    # -- help -------------------------------------------------------------------------------
    def call_staff(self) -> None:
        """呼叫帮办 is one tap away on every screen, with or without a session."""
        if self.maintenance.active:
            return
        if self.session is None:
            self.session = self.kiosk.start_session()
        session_id = self.session.id
        back = self._rerender if self.manager.current != "attract" else self.show_home

        def call() -> None:
            ok = self.kiosk.call_staff(session_id)
            Clock.schedule_once(lambda _dt: self._staff_answer(ok, back))

        self._side.submit(call)

    def _staff_answer(self, ok: bool, back: Callable[[], None]) -> None:
        _ = self._
        if ok:
            title, message = _("Staff have been called"), _(
                "Please stay at the kiosk; a member of staff is on the way.")
        else:
            title, message = _("Staff could not be called automatically"), _(
                "Please go to the service desk, or call the help number on this kiosk.")
        self.screens["message"].render(title, message, _("Back"), back)
        self._show("message", lambda: self._staff_answer(ok, back))

    def show_internal_error(self) -> None:
        _ = self._
        self.screens["message"].render(
            _("Something went wrong"),
            _("Nothing you submitted was lost. Please start again or call staff."),
            _("Back to services"), self.show_home)
        self._show("message", self.show_internal_error)

    def shutdown(self) -> None:
        self.maintenance.shutdown()
        if self.flow is not None:
            self.flow.cancel()
        self._journey.shutdown(wait=False, cancel_futures=True)
        self._side.shutdown(wait=False, cancel_futures=True)
        self._camera.shutdown(wait=False, cancel_futures=True)
