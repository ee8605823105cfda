"""Contact ID and SIA event codes: what each one is, and which are technical troubles.

A *trouble* needs an engineer (AC loss, battery, bell, communication, zone or expander trouble,
tamper, RF battery and supervision, system trouble) and opens a service ticket by default.
Alarms (burglary, fire, panic...), openings and closings are the monitoring centre's business and
never open one, whatever an account's rules say. Restores name the trouble they end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from hub.monitoring.alarm.frame import FrameError

__all__ = [
    "Event",
    "Kind",
    "decode_events",
    "default_opens_ticket",
    "kind_of",
    "label_of",
    "never_opens_ticket",
]

Kind = Literal["trouble", "alarm", "opening_closing", "test", "other"]
Protocol = Literal["cid", "sia"]

# --- Contact ID (SIA DC-05) ----------------------------------------------------------------------
CID_LABELS: dict[str, str] = {
    "100": "Medical alarm", "110": "Fire alarm", "120": "Panic alarm", "121": "Duress",
    "122": "Silent panic", "123": "Audible panic", "130": "Burglary", "131": "Perimeter burglary",
    "132": "Interior burglary", "133": "24-hour burglary", "134": "Entry/exit burglary",
    "137": "Tamper", "144": "Sensor tamper", "145": "Expansion module tamper",
    "151": "Gas detected", "154": "Water leakage",
    "300": "System trouble", "301": "AC loss", "302": "Low system battery",
    "303": "RAM checksum bad", "304": "ROM checksum bad", "305": "System reset",
    "306": "Panel programming changed", "307": "Self-test failure", "308": "System shutdown",
    "309": "Battery test failure", "310": "Ground fault", "311": "Battery missing or dead",
    "312": "Power supply overcurrent", "313": "Engineer reset",
    "320": "Sounder/relay trouble", "321": "Bell 1 trouble", "322": "Bell 2 trouble",
    "323": "Alarm relay trouble", "324": "Trouble relay trouble", "325": "Reversing relay trouble",
    "330": "System peripheral trouble", "331": "Polling loop open", "332": "Polling loop short",
    "333": "Expansion module failure", "334": "Repeater failure", "336": "Local printer failure",
    "337": "Expansion module DC loss", "338": "Expansion module low battery",
    "341": "Expansion module tamper", "342": "Expansion module AC loss",
    "343": "Expansion module self-test failure", "344": "RF receiver jam",
    "350": "Communication trouble", "351": "Telco 1 fault", "352": "Telco 2 fault",
    "353": "Long range radio fault", "354": "Failure to communicate", "355": "Loss of radio supervision",
    "356": "Loss of central polling", "370": "Protection loop trouble", "371": "Protection loop open",
    "372": "Protection loop short", "373": "Fire trouble", "380": "Sensor trouble",
    "381": "Loss of RF supervision", "382": "Loss of RPM supervision", "383": "Sensor tamper",
    "384": "RF low battery", "389": "Sensor self-test failure", "393": "Maintenance alert",
    "400": "Open/close", "401": "Open/close by user", "402": "Group open/close",
    "403": "Automatic open/close", "407": "Remote arm/disarm", "441": "Armed stay",
    "570": "Zone bypass", "601": "Manual test", "602": "Periodic test report",
}  # fmt: skip
_CID_TAMPER = frozenset({"137", "144", "145"})
_CID_NOT_TROUBLE = frozenset({"305", "306", "313"})  # resets and programming: worth keeping only
_CID_SERIES: dict[str, Kind] = {"1": "alarm", "2": "alarm", "4": "opening_closing", "6": "test"}

# --- SIA (SIA DC-03) -----------------------------------------------------------------------------
# code: (label, kind, the trouble codes it restores)
SIA_CODES: dict[str, tuple[str, Kind, tuple[str, ...]]] = {
    "AT": ("AC trouble", "trouble", ()), "AR": ("AC restoral", "trouble", ("AT",)),
    "YT": ("System battery trouble", "trouble", ()), "YM": ("System battery missing", "trouble", ()),
    "YR": ("System battery restoral", "trouble", ("YT", "YM")),
    "YP": ("Power supply trouble", "trouble", ()), "YQ": ("Power supply restored", "trouble", ("YP",)),
    "YA": ("Bell fault", "trouble", ()), "YH": ("Bell restored", "trouble", ("YA",)),
    "YC": ("Communications fail", "trouble", ()), "YS": ("Communications trouble", "trouble", ()),
    "YK": ("Communications restoral", "trouble", ("YC", "YS")),
    "LT": ("Phone line trouble", "trouble", ()), "LR": ("Phone line restoral", "trouble", ("LT",)),
    "NT": ("Network failure", "trouble", ()), "NR": ("Network restoral", "trouble", ("NT",)),
    "BT": ("Burglary zone trouble", "trouble", ()), "BJ": ("Burglary trouble restore", "trouble", ("BT",)),
    "FT": ("Fire zone trouble", "trouble", ()), "FJ": ("Fire trouble restore", "trouble", ("FT",)),
    "UT": ("Zone trouble", "trouble", ()), "UJ": ("Zone trouble restore", "trouble", ("UT",)),
    "ET": ("Expander trouble", "trouble", ()), "ER": ("Expander restoral", "trouble", ("ET",)),
    "EM": ("Expander missing", "trouble", ()), "EN": ("Expander missing restore", "trouble", ("EM",)),
    "ES": ("Expander tamper", "trouble", ()), "EJ": ("Expander tamper restore", "trouble", ("ES",)),
    "TA": ("Tamper", "trouble", ()), "TR": ("Tamper restoral", "trouble", ("TA",)),
    "XT": ("RF transmitter low battery", "trouble", ()),
    "XR": ("RF transmitter battery restoral", "trouble", ("XT",)),
    "XQ": ("RF interference", "trouble", ()), "XH": ("RF interference restoral", "trouble", ("XQ",)),
    "YX": ("Service required", "trouble", ()), "YZ": ("Service completed", "trouble", ("YX",)),
    "BA": ("Burglary alarm", "alarm", ()), "BR": ("Burglary restoral", "alarm", ()),
    "FA": ("Fire alarm", "alarm", ()), "FR": ("Fire restoral", "alarm", ()),
    "PA": ("Panic alarm", "alarm", ()), "PR": ("Panic restoral", "alarm", ()),
    "HA": ("Holdup alarm", "alarm", ()), "HR": ("Holdup restoral", "alarm", ()),
    "MA": ("Medical alarm", "alarm", ()), "MR": ("Medical restoral", "alarm", ()),
    "GA": ("Gas alarm", "alarm", ()), "GR": ("Gas restoral", "alarm", ()),
    "WA": ("Water alarm", "alarm", ()), "WR": ("Water restoral", "alarm", ()),
    "KA": ("Heat alarm", "alarm", ()), "KR": ("Heat restoral", "alarm", ()),
    "QA": ("Emergency alarm", "alarm", ()), "UA": ("Untyped zone alarm", "alarm", ()),
    "OP": ("Opening", "opening_closing", ()), "CL": ("Closing", "opening_closing", ()),
    "OA": ("Automatic opening", "opening_closing", ()), "CA": ("Automatic closing", "opening_closing", ()),
    "OR": ("Disarm from alarm", "opening_closing", ()), "CR": ("Recent closing", "opening_closing", ()),
    "OG": ("Opening, group", "opening_closing", ()), "CG": ("Closing, group", "opening_closing", ()),
    "RP": ("Automatic test", "test", ()), "RX": ("Manual test", "test", ()),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a message. ``code`` is what the rules are keyed by: the Contact ID event, or
    the SIA trouble code (a SIA restore names the troubles it ends in ``restores``)."""

    protocol: Protocol
    code: str
    restore: bool
    zone: str
    partition: str
    user: str = ""
    text: str = ""
    sia_code: str = ""  # the code as sent (SIA restores differ from the code they restore)
    restores: tuple[str, ...] = ()


def kind_of(protocol: str, code: str) -> Kind:
    if protocol == "sia":
        return SIA_CODES[code][1] if code in SIA_CODES else "other"
    if code in _CID_TAMPER or (code.startswith("3") and code not in _CID_NOT_TROUBLE):
        return "trouble"
    return _CID_SERIES.get(code[:1], "other")


def never_opens_ticket(protocol: str, code: str) -> bool:
    """Alarms, openings and closings are the monitoring centre's, never a service ticket."""
    return kind_of(protocol, code) in ("alarm", "opening_closing")


def default_opens_ticket(protocol: str, code: str) -> bool:
    return kind_of(protocol, code) == "trouble"


def label_of(event: Event) -> str:
    if event.protocol == "sia":
        return SIA_CODES.get(event.sia_code, (f"SIA {event.sia_code}",))[0]
    label = CID_LABELS.get(event.code, f"Contact ID {event.code}")
    return f"{label} restored" if event.restore else label


# --- decoding --------------------------------------------------------------------------------

# Contact ID in ADM-CID: qualifier (1 new, 3 restore, 6 status), event, partition, zone or user.
_CID = re.compile(r"([136])([0-9A-F]{3}) ([0-9A-F]{2}) ([0-9A-F]{3})\Z")
# SIA: "N" then fields, "/" between them optional: ri area, id user, ti time, pi peripheral,
# then event codes with their address (zone) and an optional ^text^.
_SIA_FIELD = re.compile(
    r"/?(?:ri(?P<ri>[0-9]+)|id(?P<id>[0-9]+)|ti(?P<ti>\d\d:\d\d)|pi(?P<pi>[0-9]+)"
    r"|(?P<code>[A-Z]{2})(?P<address>[0-9]*)(?:\^(?P<text>[^^]*)\^)?)"
)


def decode_events(token: str, data: str) -> list[Event]:
    """The events of a message's data block; :class:`FrameError` (``format``) if unreadable."""
    if token == "ADM-CID":
        return [_contact_id(data)]
    if token == "SIA-DCS":
        return _sia(data)
    return []


def _contact_id(data: str) -> Event:
    found = _CID.match(data.strip().upper())
    if found is None:
        raise FrameError("format", "Contact ID data must be 'QEEE PP ZZZ'")
    qualifier, code, partition, zone = found.groups()
    return Event("cid", code, qualifier == "3", zone, partition)


def _sia(data: str) -> list[Event]:
    if not data.startswith("N"):
        raise FrameError("format", "SIA data must start with N")
    events: list[Event] = []
    partition = user = ""
    position = 1
    while position < len(data):
        found = _SIA_FIELD.match(data, position)
        if found is None or found.end() == position:
            raise FrameError("format", f"unreadable SIA data at {data[position : position + 12]!r}")
        position = found.end()
        partition = found["ri"] or partition
        user = found["id"] or user
        if found["code"]:
            events.append(_sia_event(found, partition, user))
    if not events:
        raise FrameError("format", "SIA data without an event code")
    return events


def _sia_event(found: re.Match[str], partition: str, user: str) -> Event:
    sent = found["code"]
    restores = SIA_CODES.get(sent, ("", "other", ()))[2]
    code = restores[0] if restores else sent
    return Event(
        "sia", code, bool(restores), found["address"] or "", partition, user, (found["text"] or "").strip(),
        sia_code=sent, restores=restores,
    )  # fmt: skip
