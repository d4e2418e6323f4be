"""Faults that every simulated device can be told to have."""

from __future__ import annotations

from devices.contract import (
    CommandFailed,
    Completion,
    Device,
    DeviceState,
    EventKind,
    Severity,
)


class SimulatedDevice(Device):
    driver_name = "sim"

    def __init__(self, device_id: str) -> None:
        super().__init__(device_id)
        self._set_status(state=DeviceState.ONLINE)

    def go_online(self) -> None:
        self._set_status(state=DeviceState.ONLINE)

    def go_offline(self) -> None:
        self._set_status(state=DeviceState.OFFLINE)

    def power_off(self) -> None:
        self._set_status(state=DeviceState.POWER_OFF)

    def hardware_error(self, code: str = "hardwareError") -> None:
        self._set_status(state=DeviceState.HARDWARE_ERROR,
                         last_error=(Completion.HARDWARE_ERROR, code))
        self._emit(EventKind.ERROR, severity=Severity.ALARM, error_kind=code, action="status")

    def detach(self) -> None:
        """Unplug: the cable is pulled, the device disappears."""
        self._set_status(state=DeviceState.NO_DEVICE)
        self._emit(EventKind.DETACHED, severity=Severity.WARNING)

    def attach(self) -> None:
        self._emit(EventKind.ATTACHED)
        self._set_status(state=DeviceState.ONLINE)

    def _require_online(self) -> None:
        state = self.status().state
        if state not in (DeviceState.ONLINE, DeviceState.DEVICE_BUSY):
            raise CommandFailed(Completion.DEVICE_NOT_READY, str(state))
