"""Email over SMTP (stdlib smtplib): invitations with their iCalendar event, reminders."""

from __future__ import annotations

import email.policy
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate

from integrations.errors import ConfigurationError, DeliveryFailed


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # "text/calendar; method=REQUEST"
    data: bytes


@dataclass(frozen=True)
class Mailer:
    host: str
    port: int = 587
    sender: str = "postmortem@localhost"
    username: str = ""
    password: str = field(default="", repr=False)
    security: str = "starttls"  # "starttls", "tls" (implicit, port 465) or "none"
    timeout: float = 30.0

    def send(
        self,
        to: list[str],
        subject: str,
        text: str,
        *,
        attachments: tuple[Attachment, ...] = (),
        message_id: str | None = None,
    ) -> None:
        # Long lines up to RFC 5322's limit: the stdlib folds a subject just over 78 characters
        # before its first word, and readers then see it with a leading space.
        message = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
        message["From"] = self.sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        if message_id:
            # Stable per post-mortem, event version and kind: a retried send is recognisable.
            message["Message-ID"] = message_id
        message.set_content(text)
        for item in attachments:
            maintype, _, subtype = item.content_type.partition("/")
            subtype, *params = (p.strip() for p in subtype.split(";"))
            message.add_attachment(
                item.data,
                maintype=maintype,
                subtype=subtype,
                filename=item.filename,
                params=dict(p.split("=", 1) for p in params if "=" in p),
            )
        try:
            with self._connect() as smtp:
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError:
            raise ConfigurationError(
                f"SMTP server {self.host}:{self.port} refused the login of {self.username!r} "
                "(check PM_SMTP_USERNAME and PM_SMTP_PASSWORD)"
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(sorted(exc.recipients))
            raise DeliveryFailed(f"SMTP server refused the recipients {refused}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(
                f"cannot send mail through {self.host}:{self.port}: {type(exc).__name__}"
                f"{': ' + str(exc.strerror) if isinstance(exc, OSError) and exc.strerror else ''}"
            ) from None

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        return smtp
