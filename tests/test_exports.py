"""The public surface of DESIGN.md §2 is pinned: adding is deliberate, removing is a bug."""
from __future__ import annotations

import sockcomp

DESIGN_NAMES = {
    "ClientSocket", "ServerSocket", "ClientWinSocket", "ServerWinSocket",
    "ServerClientWinSocket", "CustomWinSocket", "ESocketError", "Var", "ClientType",
    "ServerType", "ErrorEvent", "SocketEvent", "ctNonBlocking", "ctBlocking", "stNonBlocking",
    "stThreadBlocking", "eeGeneral", "eeSend", "eeReceive", "eeConnect", "eeDisconnect",
    "eeAccept", "eeLookup", "ServerClientThread", "WinSocketStream",
}
EXTRA_NAMES = {
    "SD_RECEIVE", "SD_SEND", "SD_BOTH", "SetExceptionHook", "HandleException", "LookupState",
    "SocketState", "ESocketTimeout", "FramingMode", "FrameOverflow", "fmNone", "fmLine",
    "fmPacket", "foClose", "foDiscard",
    # the SocketEvent values an overridden ClientSocket.Event compares, plus sockcomp's own
    "seLookup", "seConnecting", "seConnect", "seDisconnect", "seListen", "seAccept", "seWrite",
    "seRead", "seHalfClose",
    # ASyncStyles, SetErrorProc and the Lookup states (issue 18)
    "SetErrorProc", "AsyncStyle", "asRead", "asWrite", "asOOB", "asAccept", "asConnect",
    "asClose", "lsIdle", "lsLookupAddress", "lsLookupService",
}


def test_every_design_name_is_exported() -> None:
    for name in DESIGN_NAMES | EXTRA_NAMES:
        assert hasattr(sockcomp, name), name


def test_all_lists_exactly_the_public_names() -> None:
    assert set(sockcomp.__all__) == DESIGN_NAMES | EXTRA_NAMES


def test_enum_values_are_the_delphi_ordinals() -> None:
    assert [int(e) for e in sockcomp.ErrorEvent] == list(range(7))
    assert sockcomp.eeLookup == 6 and sockcomp.ErrorEvent.eeConnect is sockcomp.eeConnect
    assert (sockcomp.ctNonBlocking, sockcomp.ctBlocking) == (0, 1)
    assert (sockcomp.stNonBlocking, sockcomp.stThreadBlocking) == (0, 1)
    assert [e.name for e in sockcomp.SocketEvent] == [
        "seLookup", "seConnecting", "seConnect", "seDisconnect", "seListen", "seAccept",
        "seWrite", "seRead"]
    assert sockcomp.seHalfClose == 8  # sockcomp's own event, after the VCL's


def test_socket_error_is_an_oserror_with_vcl_fields() -> None:
    err = sockcomp.ESocketError.from_code(10061, "connect", 111)
    assert isinstance(err, OSError)
    assert err.ErrorCode == 10061 and err.errno == 111 and err.API == "connect"
    assert str(err).startswith("Windows socket error: ")
    assert str(err).endswith("(10061), on API 'connect'")


def test_var_is_one_shared_cell() -> None:
    cell = sockcomp.Var(10054)
    assert cell == 10054 and cell.value == 10054
    cell.value = 0
    assert cell == 0 and repr(cell) == "Var(0)"


def test_package_ships_py_typed() -> None:
    from importlib.resources import files

    assert files("sockcomp").joinpath("py.typed").is_file()
