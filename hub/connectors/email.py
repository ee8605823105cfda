"""E-mail over SMTP with aiosmtplib.

Why aiosmtplib and not stdlib smtplib in a thread: the outbox worker is one event loop
delivering many messages at once; aiosmtplib's connect/STARTTLS/send are awaitable with a real
timeout and cancellation, so a hanging relay costs one coroutine, not a pool thread that cannot
be cancelled. Classification for the outbox: 4xx replies and connection trouble are transient
(greylisting, relay busy); 5xx replies (bad recipient, auth refused) are permanent.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from hub.outbox import PermanentDeliveryError, TransientDeliveryError

__all__ = ["SmtpTarget", "send_email"]


class SmtpTarget:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 20.0,
    ) -> None:
        self.host, self.port, self.security = host, port, security
        self.username, self.password, self.timeout = username, password, timeout


def _code_error(code: int, detail: str) -> Exception:
    if 400 <= code < 500:
        return TransientDeliveryError(f"SMTP {code}: {detail}")
    return PermanentDeliveryError(f"SMTP {code}: {detail}")


async def send_email(
    target: SmtpTarget, *, sender: str, to: str, subject: str, text: str, message_key: str
) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    # A stable Message-ID per outbox message: a receiver can drop a duplicate after a retry.
    domain = sender.rsplit("@", 1)[-1]
    message["Message-ID"] = make_msgid(idstring=message_key.replace(":", ".")[:60], domain=domain)
    message.set_content(text)
    try:
        await aiosmtplib.send(
            message,
            hostname=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.security == "tls",
            start_tls=target.security == "starttls",
            timeout=target.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [response.code for response in exc.recipients]
        raise _code_error(min(codes) if codes else 550, str(exc)) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise _code_error(exc.code, exc.message) from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise TransientDeliveryError(f"SMTP unreachable: {exc!r}") from exc
