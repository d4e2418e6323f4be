"""What each screen says. msgids only (translated at display time); no Kivy here, so a test
can check that every problem a flow can report has its own words and way back."""

from __future__ import annotations

from devices.identity import Authenticity, DocumentType
from devices.vision.quality import Guidance
from flows.apply import ApplyAction, ApplyProblem, ApplyStep, MaterialState
from flows.certificate import CertAction, CertProblem
from flows.checkin import Action, Problem, Step
from flows.identify import IdAction, IdProblem
from flows.material_capture import CaptureAction, CaptureProblem
from flows.ports import ApplicationStatus, RatingLevel
from flows.print_job import PrintAction, PrintProblem
from flows.query import QueryProblem
from flows.rating import (
    COMMENT_TOO_LONG,
    INDICATORS_REQUIRED,
    UNKNOWN_INDICATOR,
    RateAction,
    RateProblem,
)
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
    Problem.FORGED_CODE: (
        N_("This code is not genuine"),
        N_("The code's security check failed: it was changed or not issued by the booking "
           "service. Please ask staff for help."),
    ),
    Problem.UNKNOWN_KEY: (
        N_("This kiosk cannot check this code yet"),
        N_("Your code may be fine, but this kiosk does not know its issuer yet. Please ask "
           "staff to check you in."),
    ),
    Problem.EXPIRED_CODE: (
        N_("This appointment code has expired"),
        N_("It could be used until {detail}. Please book again, or take a number without an "
           "appointment."),
    ),
    Problem.TOO_EARLY: (
        N_("It is too early to check in"),
        N_("Check-in for this appointment opens at {detail}. Please come back then."),
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
        N_("It was booked for {detail}. Please go to the centre named in your booking."),
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

# -- identify --------------------------------------------------------------------------------
ID_PROBLEMS: dict[IdProblem, tuple[str, str]] = {
    IdProblem.NO_READER: (
        N_("No card reader is working"),
        N_("Please ask staff for help, or use the service desk."),
    ),
    IdProblem.TIMEOUT: (
        N_("No document was placed"),
        N_("Place your ID card flat on the reader, or your passport photo page down."),
    ),
    IdProblem.INVALID_CARD: (
        N_("This card cannot be read"),
        N_("Please use your resident ID card, or a passport or travel permit with a chip."),
    ),
    IdProblem.ACCESS_DENIED: (
        N_("The chip did not open"),
        N_("The document number or dates typed do not match this document. Please check them."),
    ),
    IdProblem.CARD_REMOVED: (
        N_("The document was taken away too early"),
        N_("Please place it again and leave it until the kiosk says it has been read."),
    ),
    IdProblem.READ_FAILED: (
        N_("The document could not be read"),
        N_("Please place it again, flat and still. ({detail})"),
    ),
    IdProblem.READER_FAILED: (
        N_("The card reader is not working"),
        N_("Please ask staff for help. ({detail})"),
    ),
    IdProblem.NOT_GENUINE: (
        N_("This document could not be verified"),
        N_("The data on the chip did not pass the security check. Please ask staff for help."),
    ),
    IdProblem.EXPIRED: (
        N_("This document has expired"),
        N_("It was valid until {detail}. Please ask staff for help."),
    ),
    IdProblem.BAD_RECORD: (
        N_("The data on this card is not valid"),
        N_("Please ask staff for help."),
    ),
}

ID_ACTIONS: dict[IdAction, str] = {
    IdAction.TRY_AGAIN: N_("Try again"),
    IdAction.USE_PASSPORT: N_("Passport or travel permit"),
    IdAction.USE_ID_CARD: N_("Use ID card"),
    IdAction.ENTER_MRZ_AGAIN: N_("Type the numbers again"),
    IdAction.CONTINUE: N_("Yes, continue"),
    IdAction.HOME: N_("Back to services"),
    IdAction.CALL_STAFF: N_("Call staff"),
}

DOCUMENT_TITLES: dict[DocumentType, str] = {
    DocumentType.RESIDENT_ID: N_("Resident ID card"),
    DocumentType.PASSPORT: N_("Passport"),
    DocumentType.TRAVEL_PERMIT: N_("Travel permit"),
}

AUTHENTICITY: dict[Authenticity, str] = {
    Authenticity.VERIFIED: N_("The document's security check passed."),
    Authenticity.NOT_VERIFIED: N_("Chip read; no trust list is installed to verify its issuer."),
    Authenticity.FAILED: N_("The document's security check failed."),
}

# -- progress query ----------------------------------------------------------------------------
APPLICATION_STATUS: dict[ApplicationStatus, str] = {
    ApplicationStatus.SUBMITTED: N_("Submitted"),
    ApplicationStatus.ACCEPTED: N_("Accepted"),
    ApplicationStatus.IN_REVIEW: N_("Under review"),
    ApplicationStatus.SUPPLEMENT_NEEDED: N_("Materials to supply"),
    ApplicationStatus.APPROVED: N_("Approved"),
    ApplicationStatus.REJECTED: N_("Not approved"),
    ApplicationStatus.READY: N_("Ready to collect"),
    ApplicationStatus.COLLECTED: N_("Collected"),
}

QUERY_PROBLEMS: dict[QueryProblem, tuple[str, str]] = {
    QueryProblem.BACKOFFICE_UNAVAILABLE: PROBLEMS[Problem.BACKOFFICE_UNAVAILABLE],
}

# -- 材料拍照 material capture -------------------------------------------------------------------
GUIDANCE: dict[Guidance, str] = {
    Guidance.NO_DOCUMENT: N_("Lay the document flat in the area under the camera"),
    Guidance.MOVE_FURTHER: N_("Move the document a little further away"),
    Guidance.CORNER_CUT: N_("A corner is outside the picture: move the document to the middle"),
    Guidance.MOVE_CLOSER: N_("Move the document closer"),
    Guidance.TOO_DARK: N_("Too dark: please ask staff to check the light"),
    Guidance.TOO_MUCH_GLARE: N_("Too much glare: tilt the document a little"),
    Guidance.HOLD_STILL: N_("Hold still"),
    Guidance.OK: N_("Good, hold still: taking the photo…"),
}

CAPTURE_PROBLEMS: dict[CaptureProblem, str] = {
    CaptureProblem.NO_FRAME: N_("The camera has not shown a picture yet. Please wait a moment."),
    CaptureProblem.NO_DOCUMENT: N_("No document can be seen. Lay it flat under the camera."),
    CaptureProblem.NO_PAGES: N_("Please photograph at least one page first."),
    CaptureProblem.PAGE_LIMIT: N_("This material has no more pages."),
}

CAPTURE_ACTIONS: dict[CaptureAction, str] = {
    CaptureAction.CAPTURE: N_("Take photo now"),
    CaptureAction.RETAKE: N_("Take again"),
    CaptureAction.ADD_PAGE: N_("Next page"),
    CaptureAction.FINISH: N_("Done"),
}

# -- 自助申报 ------------------------------------------------------------------------------------
APPLY_PROBLEMS: dict[ApplyProblem, tuple[str, str]] = {
    ApplyProblem.CATALOGUE_UNAVAILABLE: (
        N_("The service guide cannot be loaded"),
        N_("This kiosk cannot reach the service centre's system and has no copy of the guide "
           "yet. Please try again in a moment or ask staff."),
    ),
    ApplyProblem.NO_ITEMS: (
        N_("Nothing can be applied for at this kiosk"),
        N_("Please go to the service desk; staff will take your application."),
    ),
    ApplyProblem.CAMERA_UNAVAILABLE: (
        N_("The document camera is not working"),
        N_("Documents cannot be photographed now, so applications cannot be taken here. "
           "Please ask staff or use the service desk."),
    ),
    ApplyProblem.NOT_STORED: (
        N_("Your application could not be saved"),
        N_("Nothing was submitted. Please try again; if it fails again, staff will help "
           "you."),
    ),
    ApplyProblem.RECEIPT_NOT_PRINTED: (
        N_("Your application was received, but the receipt did not print"),
        N_("Please note your number: {detail}. Staff can print the receipt for you."),
    ),
}

APPLY_ACTIONS: dict[ApplyAction, str] = {
    ApplyAction.RETRY: N_("Try again"),
    ApplyAction.REPRINT: N_("Print again"),
    ApplyAction.HOME: N_("Back to services"),
    ApplyAction.CALL_STAFF: N_("Call staff"),
    ApplyAction.FINISH: N_("Finish"),
}

APPLY_BUSY: dict[ApplyStep, str] = {
    ApplyStep.LOADING: N_("Loading the service guide…"),
    ApplyStep.SUBMITTING: N_("Saving your application…"),
    ApplyStep.PRINTING: N_("Printing your receipt…"),
}

MATERIAL_STATES: dict[MaterialState, str] = {
    MaterialState.MISSING: N_("Not yet photographed"),
    MaterialState.CAPTURED: N_("Photographed: {pages} page(s)"),
    MaterialState.DEFERRED: N_("To be supplied later"),
    MaterialState.SKIPPED: N_("Not provided (optional)"),
}

# The catalogue's requirement of a material.
REQUIREMENTS: dict[str, str] = {
    "required": N_("required"),
    "optional": N_("optional"),
    "deferrable": N_("may be supplied later"),
}

# 告知承诺: its wording goes with flows.apply.COMMITMENT_VERSION; a change of wording is a new
# version.
COMMITMENT = N_(
    "I promise that the information I have given and the documents I have photographed are "
    "true, complete and valid, and that I meet the conditions of this service. I know that a "
    "false promise may lead to the application being refused or the decision being revoked, "
    "and will be recorded in my credit record. Materials I chose to supply later will be "
    "brought by the deadline on my receipt.")

PHONE_INVALID = N_("Please enter an 11-digit mobile number.")
DELIVERED = N_("The service centre has received your application.")
PENDING = N_("Submitted. It will be sent to the service centre as soon as the connection is "
             "back; you do not need to apply again. Keep this number to follow it.")
TAKE_RECEIPT = N_("Please take your receipt from the slot below.")

# -- printing, 自助出件, 好差评 --------------------------------------------------------------------
PRINT_PROBLEMS: dict[PrintProblem, tuple[str, str]] = {
    PrintProblem.PRINTER_UNAVAILABLE: (
        N_("The printer is not ready"),
        N_("Nothing was printed. Please ask staff for help."),
    ),
    PrintProblem.PRINT_FAILED: (
        N_("Printing failed"),
        N_("The printer stopped before the document came out. You can try once more."),
    ),
    PrintProblem.STAFF_REPRINT: (
        N_("Staff will print it for you"),
        N_("The document is kept safely; please show this reference at the service desk: "
           "{detail}."),
    ),
}

# A ticket or receipt that failed twice: kept on the kiosk for staff (the number is on screen).
KEPT_FOR_STAFF = N_("Staff can print it for you from this kiosk; show them this reference: "
                    "{reference}.")

PRINT_ACTIONS: dict[PrintAction, str] = {
    PrintAction.RETRY_PRINT: N_("Print again"),
    PrintAction.TAKEN: N_("I have taken it"),
    PrintAction.CALL_STAFF: N_("Call staff"),
    PrintAction.BACK: N_("Back"),
    PrintAction.HOME: N_("Back to services"),
}

CERT_PROBLEMS: dict[CertProblem, tuple[str, str]] = {
    CertProblem.PRINTER_UNAVAILABLE: (
        N_("The certificate printer is not ready"),
        N_("Certificates cannot be printed here now. Please ask staff or come back later."),
    ),
    CertProblem.BACKOFFICE_UNAVAILABLE: (
        N_("Your results cannot be looked up now"),
        N_("The service centre's system does not answer. Please try again in a moment."),
    ),
    CertProblem.NOTHING_PRINTABLE: (
        N_("This result is handed out at the service desk"),
        N_("It cannot be printed at the kiosk. Please go to the service desk."),
    ),
}

CERT_ACTIONS: dict[CertAction, str] = {
    CertAction.RETRY: N_("Try again"),
    CertAction.PRINT: N_("Print"),
    CertAction.PRINT_ALL: N_("Print all"),
    CertAction.CALL_STAFF: N_("Call staff"),
    CertAction.HOME: N_("Back to services"),
}

RATE_PROBLEMS: dict[RateProblem, tuple[str, str]] = {
    RateProblem.SCHEME_UNAVAILABLE: (
        N_("The rating form cannot be loaded"),
        N_("Please try again in a moment."),
    ),
    RateProblem.BACKOFFICE_UNAVAILABLE: (
        N_("Your rating could not be sent"),
        N_("The service centre's system does not answer. You can try once more."),
    ),
    RateProblem.NOT_SENT: (
        N_("Your rating was not sent"),
        N_("Sorry: it could not be delivered. You can also rate by the 12345 hotline."),
    ),
    RateProblem.REJECTED: (
        N_("Your rating was not accepted"),
        N_("Please rate at the service desk or by the 12345 hotline."),
    ),
}

RATE_ACTIONS: dict[RateAction, str] = {
    RateAction.RETRY: N_("Try again"),
    RateAction.BACK: N_("Choose another level"),
    RateAction.HOME: N_("Back to services"),
}

RATE_REASONS: dict[str, str] = {
    INDICATORS_REQUIRED: N_("Please choose at least one reason."),
    UNKNOWN_INDICATOR: N_("Please choose the reasons from the list."),
    COMMENT_TOO_LONG: N_("The comment is too long."),
}

RATING_LEVELS: dict[RatingLevel, str] = {
    RatingLevel.VERY_SATISFIED: N_("Very satisfied"),
    RatingLevel.SATISFIED: N_("Satisfied"),
    RatingLevel.BASICALLY_SATISFIED: N_("Basically satisfied"),
    RatingLevel.DISSATISFIED: N_("Dissatisfied"),
    RatingLevel.VERY_DISSATISFIED: N_("Very dissatisfied"),
}
