"""What each screen says. msgids only (translated at display time); no Kivy here, so a test
can check that every problem a flow can report has its own words and way back."""

from __future__ import annotations

from flows.checkin import Action, Problem, Step
from kiosk.i18n import N_

# Problem -> (title, message). The message may use {detail}: a date, a centre, an error code.
PROBLEMS: dict[Problem, tuple[str, str]] = {
    Problem.SCAN_TIMEOUT: (
        N_("No code was scanned"),
        N_("Hold the QR code from your booking under the scanner, about 10 cm away."),
    ),
    Problem.SCANNER_FAILED: (
        N_("The QR code reader is not working"),
        N_("Please ask staff for help; you can also check in at the service desk."),
    ),
    Problem.MALFORMED_CODE: (
        N_("This is not an appointment code"),
        N_("Please show the QR code from your booking confirmation."),
    ),
    Problem.UNKNOWN_CODE: (
        N_("Appointment not found"),
        N_("We could not find this appointment. Please check the code or book again."),
    ),
    Problem.OTHER_DAY: (
        N_("This appointment is for another day"),
        N_("Your appointment is on {detail}. Please come back on that day."),
    ),
    Problem.OTHER_CENTRE: (
        N_("This appointment is for another service centre"),
        N_("Your appointment is at {detail}."),
    ),
    Problem.ALREADY_USED: (
        N_("Already checked in"),
        N_("This appointment has already been checked in. Staff can reprint your ticket."),
    ),
    Problem.APPOINTMENT_CANCELLED: (
        N_("Appointment cancelled"),
        N_("This appointment was cancelled. You can take a number without an appointment."),
    ),
    Problem.BACKOFFICE_UNAVAILABLE: (
        N_("The service system cannot be reached"),
        N_("Nothing was lost. Please try again in a moment, or ask staff for help."),
    ),
    Problem.PRINT_FAILED: (
        N_("Your ticket could not be printed"),
        N_("You are checked in. Please note your number below; staff can print it for you."),
    ),
}

PRINT_ERRORS: dict[str, str] = {
    "paperOut": N_("The printer is out of paper."),
    "paperJammed": N_("The printer is jammed."),
    "doorOpen": N_("The printer cover is open."),
}

ACTIONS: dict[Action, str] = {
    Action.SCAN_AGAIN: N_("Scan again"),
    Action.RETRY: N_("Try again"),
    Action.RETRY_PRINT: N_("Print again"),
    Action.HOME: N_("Back to services"),
    Action.CALL_STAFF: N_("Call staff"),
}

BUSY: dict[Step, str] = {
    Step.LOOKING_UP: N_("Looking up your appointment…"),
    Step.CHECKING_IN: N_("Checking you in…"),
    Step.PRINTING: N_("Printing your ticket…"),
}
