"""Every route handler of the app, by domain. A new domain adds one line here."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

__all__ = ["route_handlers"]


def route_handlers() -> list[ControllerRouterHandler]:
    from hub.accounts.controllers import (
        AccountController,
        ApiKeyController,
        EmployeeController,
        PermissionController,
    )
    from hub.auth.controllers import AuthController
    from hub.client.controllers import ClientTicketController
    from hub.desk.controllers import ContactActivityController, TicketController
    from hub.desk.sla.controllers import SLA_CONTROLLERS
    from hub.exchange.controllers import EXCHANGE_CONTROLLERS
    from hub.intake.controllers import IntakeController
    from hub.monitoring.alarm.controllers import ALARM_CONTROLLERS
    from hub.monitoring.controllers import MONITORING_CONTROLLERS
    from hub.notifications.controllers import AppDeviceController, NotificationController
    from hub.outbox.controllers import OutboxController
    from hub.payments.controllers import PAYMENT_CONTROLLERS
    from hub.people.controllers import CompanyController, ContactController, ObjectController, PhoneController
    from hub.system import health, ready
    from hub.telephony.controllers import ConsoleController, PbxIntakeController, TelephonyController
    from hub.web.router import web_routers

    return [
        health,
        ready,
        AuthController,
        AccountController,
        EmployeeController,
        ApiKeyController,
        PermissionController,
        OutboxController,
        IntakeController,
        CompanyController,
        ContactController,
        ObjectController,
        PhoneController,
        TicketController,
        ContactActivityController,
        *SLA_CONTROLLERS,
        PbxIntakeController,
        TelephonyController,
        ConsoleController,
        *EXCHANGE_CONTROLLERS,
        *PAYMENT_CONTROLLERS,
        NotificationController,
        AppDeviceController,
        *MONITORING_CONTROLLERS,
        *ALARM_CONTROLLERS,
        ClientTicketController,
        *web_routers(),
    ]
