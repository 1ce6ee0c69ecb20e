"""Sinch set-up and contact commands: app channel credentials, the webhook, contact links and merges.

`kakao-dispatch setup app` and `setup webhook` make a Conversation API app ready for KakaoTalk
(reference/kakaotalk-channel.txt, "Setup KakaoTalk integration using the API"); both can be run
again at any time and change only what differs. `contacts link` and `contacts merge` tie the
KAKAOTALKCHAT contact a user writes from to their MSISDN, which is what lets `auto` reply inside an
open ConsultationTalk session (DESIGN §4) and lets Sinch keep one conversation history.

Exit codes: 0 done (or nothing to change), 1 a Sinch, Redis or configuration failure, 2 bad input.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

import redis
import typer

from worker.contacts import ContactBook
from worker.recipients import InvalidMsisdn, parse_msisdn
from worker.settings import Settings
from worker.sinch import SinchClient, SinchError

__all__ = [
    "REQUIRED_TRIGGERS",
    "kakaotalk_channel_credentials",
    "mask_secret",
    "register",
]

EXIT_FAILURE, EXIT_BAD_INPUT = 1, 2
KAKAOTALK, KAKAOTALKCHAT = "KAKAOTALK", "KAKAOTALKCHAT"
KAKAO_CHANNELS = (KAKAOTALK, KAKAOTALKCHAT)
# Receipts for our sends and the messages users write: the two triggers the gateway handles.
REQUIRED_TRIGGERS = ("MESSAGE_DELIVERY", "MESSAGE_INBOUND")
# Returned by GET app but owned by Sinch: sending them back in a PATCH is refused or ignored.
READ_ONLY_CREDENTIAL_FIELDS = ("state", "channel_known_id")
REDIS_TIMEOUT_S = 5.0

setup_app = typer.Typer(
    name="setup",
    help="Configure the Sinch app for KakaoTalk: channel credentials and the webhook.",
    no_args_is_help=True,
)
contacts_app = typer.Typer(
    name="contacts",
    help="Tie KakaoTalk contacts to MSISDNs: local links and Sinch contact merges.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `setup` and `contacts` command groups to a typer application."""
    app.add_typer(setup_app, name="setup")
    app.add_typer(contacts_app, name="contacts")


# --- pure helpers ------------------------------------------------------------------------------


def mask_secret(value: str) -> str:
    """A secret for display: its last four characters at most, never its length."""
    return "********" + value[-4:] if len(value) >= 12 else "********"


def kakaotalk_channel_credentials(
    existing: Sequence[Mapping[str, Any]], business_channel_id: str, sender_key: str
) -> list[dict[str, Any]]:
    """The app's `channel_credentials` with KAKAOTALK and KAKAOTALKCHAT set to these values.

    Entries of other channels are kept as they are (less the read-only fields), in their order:
    the order is the app's channel priority. The two KakaoTalk entries take the place of the first
    KakaoTalk entry there was, or go last when there was none. A `callback_secret` an old KakaoTalk
    entry had is kept.
    """
    old_secrets = {
        str(item.get("channel")): item["callback_secret"]
        for item in existing
        if item.get("channel") in KAKAO_CHANNELS and item.get("callback_secret")
    }
    kakao: list[dict[str, Any]] = [
        {
            "channel": KAKAOTALK,
            "kakaotalk_credentials": {
                "kakaotalk_plus_friend_id": business_channel_id,
                "kakaotalk_sender_key": sender_key,
            },
        },
        {"channel": KAKAOTALKCHAT, "kakaotalkchat_credentials": {"kakaotalk_plus_friend_id": business_channel_id}},
    ]
    for entry in kakao:
        if entry["channel"] in old_secrets:
            entry["callback_secret"] = old_secrets[entry["channel"]]
    result: list[dict[str, Any]] = []
    placed = False
    for item in existing:
        if item.get("channel") in KAKAO_CHANNELS:
            if not placed:
                result.extend(kakao)
                placed = True
            continue
        result.append({name: value for name, value in item.items() if name not in READ_ONLY_CREDENTIAL_FIELDS})
    if not placed:
        result.extend(kakao)
    return result


def _kakao_fields(item: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(business channel id, sender key) of a KakaoTalk credentials entry; "" for a missing part."""
    if item is None:
        return None
    key = "kakaotalk_credentials" if item.get("channel") == KAKAOTALK else "kakaotalkchat_credentials"
    fields = item.get(key)
    if not isinstance(fields, Mapping):
        return "", ""
    return str(fields.get("kakaotalk_plus_friend_id") or ""), str(fields.get("kakaotalk_sender_key") or "")


def _describe(fields: tuple[str, str], channel: str) -> str:
    channel_id, sender_key = fields
    text = f"business channel {channel_id or '(none)'}"
    if channel == KAKAOTALK:
        text += f", sender key {mask_secret(sender_key) if sender_key else '(none)'}"
    return text


def _by_channel(credentials: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for item in credentials:
        found.setdefault(str(item.get("channel")), item)
    return found


def _state(item: Mapping[str, Any] | None) -> str:
    state = item.get("state") if item is not None else None
    status = state.get("status") if isinstance(state, Mapping) else None
    return f" [{status}]" if isinstance(status, str) and status else ""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# --- shared plumbing ---------------------------------------------------------------------------


# producers.cli imports this module to register its commands: its helpers are imported when used.


def _fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    from producers.cli import fail

    fail(_one_line(message), code)


def _load_settings() -> Settings:
    from producers.cli import load_settings

    return load_settings()


def _sinch_client(settings: Settings) -> SinchClient:
    missing = [
        name
        for name, value in (
            ("SINCH_PROJECT_ID", settings.sinch_project_id),
            ("SINCH_KEY_ID", settings.sinch_key_id),
            ("SINCH_KEY_SECRET", settings.sinch_key_secret.get_secret_value()),
        )
        if not value
    ]
    if missing:
        _fail(f"missing Sinch settings: set {', '.join(missing)} in the environment")
    return SinchClient.from_settings(settings, auth=settings.sinch_auth_mode)


def _app_id(settings: Settings, option: str | None) -> str:
    app_id = option if option is not None else settings.sinch_app_id
    if not app_id.strip():
        _fail("no Sinch app: set SINCH_APP_ID or pass --app-id")
    return app_id.strip()


@contextmanager
def _sinch_errors(done: str = "") -> Iterator[None]:
    """A Sinch failure as one line (with its HTTP status and Sinch's message) and exit 1."""
    try:
        yield
    except SinchError as error:
        text = str(error) if str(error).startswith("Sinch") else f"Sinch: {error}"
        _fail(text + (f" ({done})" if done else ""))


def _contact_book(settings: Settings) -> ContactBook:
    client = redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
    )
    return ContactBook(client)


def _redis_errors(settings: Settings, done: str = "") -> AbstractContextManager[None]:
    """Redis unreachable (or refusing) as one line and exit 1."""
    from producers.cli import redis_errors

    return redis_errors(settings.redis_url, done)


def _parse_msisdn(raw: str) -> str:
    try:
        return parse_msisdn(raw).e164
    except InvalidMsisdn as error:
        _fail(str(error), EXIT_BAD_INPUT)


def _identities(contact: Mapping[str, Any]) -> list[tuple[str, str]]:
    identities = contact.get("channel_identities")
    if not isinstance(identities, list):
        return []
    return [
        (str(item.get("channel", "")), str(item.get("identity", ""))) for item in identities if isinstance(item, dict)
    ]


def _identity_on(contact: Mapping[str, Any], channel: str) -> str | None:
    return next((identity for found, identity in _identities(contact) if found == channel), None)


def _channels_text(contact: Mapping[str, Any]) -> str:
    return ", ".join(channel for channel, _ in _identities(contact)) or "no channel identities"


# --- setup -------------------------------------------------------------------------------------

AppIdOption = Annotated[
    str | None, typer.Option("--app-id", help="Conversation API app (default: $SINCH_APP_ID).", show_default=False)
]


@setup_app.command("app")
def setup_app_credentials(
    business_channel_id: Annotated[
        str, typer.Option("--business-channel-id", help="KakaoTalk Business Channel ID (kakaotalk_plus_friend_id).")
    ],
    sender_key: Annotated[
        str, typer.Option("--sender-key", help="Sender key from your Sinch account manager (never printed).")
    ],
    app_id: AppIdOption = None,
) -> None:
    """Set the app's KAKAOTALK and KAKAOTALKCHAT channel credentials; other channels are kept as they are."""
    business_channel_id, sender_key = business_channel_id.strip(), sender_key.strip()
    if not business_channel_id:
        _fail("--business-channel-id must not be empty", EXIT_BAD_INPUT)
    if not sender_key:
        _fail("--sender-key must not be empty", EXIT_BAD_INPUT)
    settings = _load_settings()
    app = _app_id(settings, app_id)
    with _sinch_client(settings) as sinch, _sinch_errors():
        current = sinch.get_app(app)
        raw = current.get("channel_credentials")
        existing = [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []
        wanted = kakaotalk_channel_credentials(existing, business_channel_id, sender_key)
        before, after = _by_channel(existing), _by_channel(wanted)
        if all(_kakao_fields(before.get(channel)) == _kakao_fields(after[channel]) for channel in KAKAO_CHANNELS):
            typer.echo(f"App {app}: KakaoTalk credentials are already set; nothing changed.")
            for channel in KAKAO_CHANNELS:
                fields = _kakao_fields(after[channel]) or ("", "")
                typer.echo(f"  {channel:<14} {_describe(fields, channel)}{_state(before.get(channel))}")
            return
        updated = sinch.update_app(app, {"channel_credentials": wanted}, ["channel_credentials"])
    shown = _by_channel([item for item in updated.get("channel_credentials") or [] if isinstance(item, dict)])
    typer.echo(f"App {app}: channel credentials updated.")
    for channel in KAKAO_CHANNELS:
        old, new = _kakao_fields(before.get(channel)), _kakao_fields(after[channel]) or ("", "")
        if old is None:
            change = f"added: {_describe(new, channel)}"
        elif old == new:
            change = f"unchanged: {_describe(new, channel)}"
        else:
            change = f"changed: {_describe(old, channel)} -> {_describe(new, channel)}"
        typer.echo(f"  {channel:<14} {change}{_state(shown.get(channel))}")
    for item in existing:
        channel = str(item.get("channel"))
        if channel not in KAKAO_CHANNELS:
            typer.echo(f"  {channel:<14} kept")


@setup_app.command("webhook")
def setup_webhook(
    target: Annotated[
        str, typer.Option("--target", help="URL Sinch posts callbacks to (the gateway's /webhooks/sinch).")
    ],
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret", help="Secret that signs callbacks (default: $SINCH_WEBHOOK_SECRET).", show_default=False
        ),
    ] = None,
    app_id: AppIdOption = None,
) -> None:
    """Make sure one webhook sends MESSAGE_DELIVERY and MESSAGE_INBOUND to TARGET; running it again changes nothing.

    Without --secret and $SINCH_WEBHOOK_SECRET, an existing webhook keeps its secret; `--secret ""` removes it.
    """
    target = target.strip()
    if urlsplit(target).scheme not in ("http", "https") or not urlsplit(target).netloc:
        _fail(f"--target {target!r} is not an http:// or https:// URL", EXIT_BAD_INPUT)
    settings = _load_settings()
    app = _app_id(settings, app_id)
    configured = settings.sinch_webhook_secret.get_secret_value() if settings.sinch_webhook_secret else ""
    wanted_secret, secret_source = (
        (secret, "--secret") if secret is not None else (configured or None, "$SINCH_WEBHOOK_SECRET")
    )
    with _sinch_client(settings) as sinch, _sinch_errors():
        existing = next((hook for hook in sinch.list_webhooks(app) if hook.get("target") == target), None)
        if existing is None:
            created = sinch.create_webhook(_webhook_body(app, target, list(REQUIRED_TRIGGERS), wanted_secret or ""))
            typer.echo(
                f"Created webhook {created.get('id', '?')} for app {app}: {target} "
                f"({', '.join(REQUIRED_TRIGGERS)}); {_signing(wanted_secret or '', secret_source)}."
            )
            return
        old_id = str(existing.get("id", ""))
        triggers = [str(trigger) for trigger in existing.get("triggers") or []]
        missing = [trigger for trigger in REQUIRED_TRIGGERS if trigger not in triggers]
        reasons = [f"it lacked {', '.join(missing)}"] if missing else []
        if existing.get("target_type", "HTTP") != "HTTP":
            reasons.append(f"its target type was {existing.get('target_type')}")
        # Sinch lists the secret; a different one than the gateway's would make it refuse every callback.
        shown_secret = existing.get("secret") if isinstance(existing.get("secret"), str) else None
        if wanted_secret is not None and shown_secret is not None and shown_secret != wanted_secret:
            reasons.append("its secret differed")
        if wanted_secret is None and shown_secret is None and reasons:
            _fail(
                "Sinch does not show the webhook's secret, so recreating it would drop it: pass --secret",
                EXIT_BAD_INPUT,
            )
        if wanted_secret is None:
            wanted_secret, secret_source = shown_secret or "", "its existing secret"
        signing = (
            _signing(wanted_secret, secret_source) if shown_secret is not None else "Sinch did not show its secret"
        )
        if not reasons:
            typer.echo(
                f"Webhook {old_id} for app {app} already sends {', '.join(triggers)} to {target}; nothing changed; "
                f"{signing}."
            )
            return
        sinch.delete_webhook(old_id)
        with _sinch_errors(f"webhook {old_id} was deleted and not recreated: run this command again"):
            created = sinch.create_webhook(_webhook_body(app, target, triggers + missing, wanted_secret))
    typer.echo(
        f"Recreated webhook {old_id} as {created.get('id', '?')} for app {app}: {target} "
        f"({', '.join(triggers + missing)}), because {' and '.join(reasons)}; {_signing(wanted_secret, secret_source)}."
    )


def _signing(secret: str, source: str) -> str:
    if secret:
        return f"callbacks will be signed with {source}"
    return "callbacks will NOT be signed (set SINCH_WEBHOOK_SECRET or pass --secret)"


def _webhook_body(app_id: str, target: str, triggers: list[str], secret: str) -> dict[str, Any]:
    body: dict[str, Any] = {"app_id": app_id, "target": target, "target_type": "HTTP", "triggers": triggers}
    if secret:
        body["secret"] = secret
    return body


# --- contacts ----------------------------------------------------------------------------------


@contacts_app.command("link")
def link_contact(
    msisdn: Annotated[str, typer.Argument(help="Phone number; Korean unless it has a country code.")],
    contact_id: Annotated[str, typer.Argument(help="The person's KAKAOTALKCHAT contact id.")],
) -> None:
    """Record that CONTACT_ID is the person with MSISDN, so `auto` replies in their open ConsultationTalk session."""
    number = _parse_msisdn(msisdn)
    contact_id = contact_id.strip()
    if not contact_id:
        _fail("CONTACT_ID must not be empty", EXIT_BAD_INPUT)
    settings = _load_settings()
    book = _contact_book(settings)
    with _redis_errors(settings):
        previous_contact, previous_msisdn = book.contact_for(number), book.msisdn_for(contact_id)
        book.link(number, contact_id)
    typer.echo(f"Linked {number} to contact {contact_id}.")
    if previous_contact not in (None, contact_id):
        typer.echo(f"  replaces the link of {number} to contact {previous_contact}")
    if previous_msisdn not in (None, number):
        typer.echo(f"  replaces the link of contact {contact_id} to {previous_msisdn}")


@contacts_app.command("merge")
def merge_contacts(
    kakaotalk_contact_id: Annotated[
        str, typer.Argument(help="Contact reached by MSISDN (AlimTalk/FriendTalk): kept, with the history.")
    ],
    kakaotalkchat_contact_id: Annotated[
        str, typer.Argument(help="Contact created when the user wrote (ConsultationTalk): merged away.")
    ],
    msisdn: Annotated[
        str | None,
        typer.Option(
            "--msisdn", help="The user's verified number (default: the KAKAOTALK identity).", show_default=False
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Merge even when the contacts' channels do not fit.")] = False,
) -> None:
    """Merge the KAKAOTALKCHAT contact into the KAKAOTALK contact, then move the local link and open session to it."""
    destination, source = kakaotalk_contact_id.strip(), kakaotalkchat_contact_id.strip()
    if not destination or not source:
        _fail("both contact ids are needed", EXIT_BAD_INPUT)
    if destination == source:
        _fail("the two contact ids are the same", EXIT_BAD_INPUT)
    number = _parse_msisdn(msisdn) if msisdn is not None else None
    settings = _load_settings()
    book = _contact_book(settings)
    with _redis_errors(settings):
        book.redis.ping()  # fail before Sinch is changed, not after
    with _sinch_client(settings) as sinch:
        with _sinch_errors():
            kakaotalk_contact, chat_contact = sinch.get_contact(destination), sinch.get_contact(source)
        kakaotalk_identity = _identity_on(kakaotalk_contact, KAKAOTALK)
        if not force:
            _check_merge(destination, kakaotalk_contact, source, chat_contact, number)
        with _sinch_errors():
            merged = sinch.merge_contacts(destination, source)
    typer.echo(f"Merged contact {source} into {destination} (Sinch keeps the conversation history there).")
    if number is None and kakaotalk_identity is not None:
        try:
            number = parse_msisdn(kakaotalk_identity).e164
        except InvalidMsisdn:
            number = None
    with _redis_errors(settings, f"the Sinch merge is done; run `kakao-dispatch contacts link MSISDN {destination}`"):
        session_moved = book.has_open_session(source)
        book.merged(source, destination)
        if number is not None:
            book.link(number, destination)
    typer.echo(f"Contact {merged.get('id', destination)} now has:")
    for channel, identity in _identities(merged):
        typer.echo(f"  {channel:<14} {identity}")
    if number is not None:
        typer.echo(f"Linked {number} to contact {destination}.")
    if session_moved:
        typer.echo(f"The open ConsultationTalk session of {source} moved to {destination}.")


def _check_merge(
    destination: str,
    kakaotalk_contact: Mapping[str, Any],
    source: str,
    chat_contact: Mapping[str, Any],
    msisdn: str | None,
) -> None:
    """The destination must be the KAKAOTALK (MSISDN) contact and the source the KAKAOTALKCHAT one."""
    kakaotalk_identity = _identity_on(kakaotalk_contact, KAKAOTALK)
    hint = " (first the KAKAOTALK contact, then the KAKAOTALKCHAT one; --force merges anyway)"
    if kakaotalk_identity is None:
        _fail(
            f"contact {destination} has no KAKAOTALK identity ({_channels_text(kakaotalk_contact)}){hint}",
            EXIT_BAD_INPUT,
        )
    if _identity_on(chat_contact, KAKAOTALKCHAT) is None:
        _fail(f"contact {source} has no KAKAOTALKCHAT identity ({_channels_text(chat_contact)}){hint}", EXIT_BAD_INPUT)
    if msisdn is not None:
        try:
            same = parse_msisdn(kakaotalk_identity).e164 == msisdn
        except InvalidMsisdn:
            same = False
        if not same:
            _fail(
                f"contact {destination} belongs to KAKAOTALK identity {kakaotalk_identity}, not {msisdn} "
                "(--force merges anyway)",
                EXIT_BAD_INPUT,
            )
