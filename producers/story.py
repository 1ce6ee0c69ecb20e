"""`kakao-dispatch demo` (what `make demo` runs): the sandbox, then a scripted story through the HTTP API.

The story: AlimTalk (a delivery notice and a one-time code), FriendTalk of every message type,
invalid requests refused with their violations, a FriendTalk outside the window parked until the
next opening (08:00 KST), a user writing to the business and the business answering by
ConsultationTalk, a burst of Sinch 5xx errors retried, and the delivery receipts coming back. A live
table follows every job; the exit status is 0 only if every job reached the state the story expects.

KakaoTalk's FriendTalk window is 08:00-21:00 KST. So that the story can show FriendTalk being sent
at any hour, the demo's sandbox (worker and simulator alike) runs with a window that opens at 08:00
and closes two hours from now; the parked message asks for a time after that close.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import redis
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from producers.demo import EXAMPLES
from producers.sandbox import Sandbox, SandboxError, SandboxOptions, stop_signals_raise_interrupt
from worker.contacts import ContactBook
from worker.jobs import Job, JobStore
from worker.recipients import mask_msisdn
from worker.sending_window import FRIENDTALK_HOURS, KST, SendingWindow

STORY_TIMEOUT_S = 75.0
STATUS_STYLE = {"queued": "white", "scheduled": "cyan", "sending": "yellow", "sent": "blue", "delivered": "green",
                "failed": "red", "unknown": "magenta", "cancelled": "dim", "expired": "dim"}  # fmt: skip


def demo_window(now: datetime) -> tuple[str, datetime]:
    """A FriendTalk window open now and for two hours, opening at 08:00 KST where it can; and an instant after
    its close (inside the same night), at which a FriendTalk is parked until the next opening."""
    local = now.astimezone(KST)
    minute = local.hour * 60 + local.minute
    if 8 * 60 <= minute < 18 * 60 + 30:  # KakaoTalk's own window holds the story
        window, parked = FRIENDTALK_HOURS, local.replace(hour=21, minute=30, second=0, microsecond=0)
    elif 5 * 60 + 45 <= minute < 7 * 60 + 45:  # early morning: close just before 08:00
        window, parked = "08:00-07:55", local.replace(hour=7, minute=57, second=0, microsecond=0)
    elif 7 * 60 + 45 <= minute < 8 * 60:  # a quarter of an hour before 08:00: open earlier
        window, parked = "07:30-21:00", local.replace(hour=21, minute=30, second=0, microsecond=0)
    else:  # evening and night: close two hours from now
        close = local + timedelta(hours=2)
        window, parked = f"08:00-{close:%H:%M}", (close + timedelta(minutes=10)).replace(second=0, microsecond=0)
    return window, parked


@dataclass
class StoryJob:
    """One message of the story and what must become of it."""

    chapter: str
    label: str
    request: dict[str, Any]
    expect: str
    extra: Callable[[Job], str | None] | None = None  # a further expectation: None when met, else what is wrong
    job_id: str | None = None
    answer: dict[str, Any] = field(default_factory=dict)
    job: Job | None = None

    def problem(self) -> str | None:
        if self.job is None:
            return "not enqueued" if self.job_id is None else "no job record"
        if self.job.status != self.expect:
            return f"is {self.job.status}, expected {self.expect}"
        return self.extra(self.job) if self.extra else None


@dataclass
class StoryRefusal:
    label: str
    request: dict[str, Any]
    rules: set[str]
    status: int | None = None
    found: list[dict[str, Any]] = field(default_factory=list)

    def problem(self) -> str | None:
        if self.status != 422:
            return f"answered {self.status}, expected 422"
        missing = self.rules - {violation["rule"] for violation in self.found}
        return f"without the violation {', '.join(sorted(missing))}" if missing else None


def example(name: str, media_url: str) -> dict[str, Any]:
    """An example request of examples/requests, with its media served locally and no pinned instants."""
    text = (EXAMPLES / "requests" / f"{name}.json").read_text(encoding="utf-8").replace("$MEDIA", media_url)
    document: dict[str, Any] = json.loads(text)
    document.pop("send_at", None)
    document.pop("expires_at", None)
    return document


def expected_rules() -> dict[str, set[str]]:
    cases = json.loads((EXAMPLES / "demo_cases.json").read_text(encoding="utf-8"))
    return {case["file"].removesuffix(".json"): set(case.get("rules", [])) for case in cases}


class Story:
    def __init__(self, sandbox: Sandbox, console: Console, parked_at: datetime) -> None:
        self.sandbox = sandbox
        self.console = console
        self.parked_at = parked_at
        self.http = httpx.Client(timeout=10)
        self.redis = redis.Redis.from_url(sandbox.redis_url, decode_responses=True)
        self.store = JobStore(self.redis)
        self.contacts = ContactBook(self.redis)
        self.jobs: list[StoryJob] = []
        self.refusals: list[StoryRefusal] = []
        self.live: Live | None = None

    def close(self) -> None:
        self.http.close()
        self.redis.close()

    # -- what the user sees -----------------------------------------------------------------------

    def say(self, line: str) -> None:
        """A line of the story, printed above the live table (which stays at the bottom of a terminal)."""
        self.console.print(line, highlight=False)
        self.refresh()

    def render(self) -> Table:
        table = Table(expand=True, title="jobs", title_justify="left")
        for column in ("chapter", "message", "to", "status", "tries", "goes at (KST)", "expected"):
            table.add_column(column, overflow="fold")
        for item in self.jobs:
            job = item.job
            status = job.status if job else "-"
            recipient = (job.msisdn and mask_msisdn(job.msisdn)) or (job.contact_id or "")[:12] if job else ""
            waiting = job is not None and job.status == "scheduled" and job.not_before is not None
            goes = f"{job.not_before.astimezone(KST):%m-%d %H:%M}" if waiting and job and job.not_before else ""
            ok = item.problem() is None
            table.add_row(item.chapter, item.label, recipient, Text(status, style=STATUS_STYLE.get(status, "")),
                          str(job.attempts if job else 0), goes,
                          Text(item.expect + (" ✔" if ok else ""), style="green" if ok else "dim"))  # fmt: skip
        return table

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render(), refresh=True)

    def poll(self) -> None:
        for item in self.jobs:
            if item.job_id is not None:
                item.job = self.store.get(item.job_id)
        self.refresh()

    def wait(self, condition: Callable[[], bool], seconds: float, what: str) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            self.poll()
            if condition():
                return True
            if time.monotonic() > deadline:
                self.say(f"[red]gave up waiting for {what} after {seconds:g} s[/red]")
                return False
            if gone := self.sandbox.exited():
                self.say(f"[red]{gone[0].name} exited with status {gone[0].exit_code}[/red]")
                return False
            time.sleep(0.25)

    # -- talking to the system as a user would ------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, self.sandbox.api_url + path, **kwargs)

    def sim(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, self.sandbox.simulator_url + path, **kwargs)
        response.raise_for_status()
        return response.json()

    def enqueue(self, item: StoryJob) -> None:
        response = self.api("POST", "/v1/messages", json=item.request)
        item.answer = response.json()
        if response.status_code != 202:
            self.say(f"[red]{item.label}: {response.status_code} {item.answer}[/red]")
        else:
            item.job_id = item.answer["id"]
        self.jobs.append(item)
        self.poll()

    def refuse(self, refusal: StoryRefusal) -> None:
        response = self.api("POST", "/v1/messages", json=refusal.request)
        refusal.status = response.status_code
        refusal.found = response.json().get("violations", []) if response.status_code == 422 else []
        self.refusals.append(refusal)
        first = refusal.found[0] if refusal.found else {"rule": "-", "message": response.text[:120]}
        self.say(
            f"  [red]✘[/red] {refusal.label}: {response.status_code} [bold]{first['rule']}[/bold] {first['message']}"
        )

    # -- the chapters -------------------------------------------------------------------------------

    def alimtalk(self) -> None:
        self.say("[bold]1. AlimTalk[/bold]: an approved template to a phone number, and a one-time code")
        media = self.sandbox.media_url
        self.enqueue(StoryJob("AlimTalk", "delivery notice", example("alimtalk-generic", media), "delivered"))
        code = example("alimtalk-authentication", media)
        code["expires_at"] = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
        self.enqueue(StoryJob("AlimTalk", "one-time code (authentication)", code, "delivered"))

    def friendtalk(self) -> None:
        self.say("[bold]2. FriendTalk[/bold]: every message type, to a user who added the channel")
        for name, label in (("friendtalk-text", "text"), ("friendtalk-media", "image"),
                            ("friendtalk-choice", "choice (buttons)"), ("friendtalk-card", "card"),
                            ("friendtalk-carousel", "carousel (as text)"),
                            ("friendtalk-location", "location (as text)")):  # fmt: skip
            self.enqueue(StoryJob("FriendTalk", label, example(name, self.sandbox.media_url), "delivered"))
        # Images are fetched by the worker, not at the door (enqueuing stays fast): a bad one is `rejected` there.
        narrow = example("friendtalk-media-too-narrow", self.sandbox.media_url)
        self.enqueue(StoryJob("FriendTalk", "image too narrow (worker probes it)", narrow, "rejected", too_narrow))

    def refused(self) -> None:
        self.say("[bold]3. Refused at the door[/bold]: requests that break a KakaoTalk rule never reach Sinch")
        rules = expected_rules()
        for name, label in (("alimtalk-authentication-no-keyword", "code template without a keyword"),
                            ("alimtalk-missing-parameter", "template parameter missing"),
                            ("alimtalk-bad-msisdn", "not a phone number"),
                            ("friendtalk-text-too-long", "text over 1,000 characters"),
                            ("friendtalk-choice-title-too-long", "button title too long")):  # fmt: skip
            self.refuse(StoryRefusal(label, example(name, self.sandbox.media_url), rules.get(name, set())))

    def night(self, window: SendingWindow) -> None:
        opening = window.next_opening(self.parked_at)
        self.say(f"[bold]4. Outside the window[/bold]: a FriendTalk for {self.parked_at:%H:%M} KST is parked "
                 f"until {opening:%Y-%m-%d %H:%M} KST, when the window opens")  # fmt: skip
        request = example("friendtalk-text", self.sandbox.media_url) | {"send_at": self.parked_at.isoformat()}

        def parked_until_opening(job: Job) -> str | None:
            if job.not_before is None or abs((job.not_before - opening).total_seconds()) > 1:
                return f"goes at {job.not_before}, expected {opening:%H:%M} KST"
            return None

        self.enqueue(StoryJob("FriendTalk", "sale notice at night", request, "scheduled", parked_until_opening))

    def conversation(self) -> bool:
        self.say("[bold]5. ConsultationTalk[/bold]: a user writes to the business; the business answers in that chat")
        contact = self.sim("POST", "/_sim/inbound", json={"text": "안녕하세요, 주문한 패딩 언제 오나요?"})["contact_id"]
        self.say(f"  user {contact[:12]}… wrote «안녕하세요, 주문한 패딩 언제 오나요?» (through the Sinch webhook)")
        if not self.wait(lambda: self.contacts.has_open_session(contact), 20, "the session to open"):
            return False
        self.say("  the session is open: a ConsultationTalk reply may go (KAKAOTALKCHAT)")
        reply = {"type": "consultation", "to": {"contact_id": contact},
                 "message": {"text_message": {"text": "내일 도착 예정입니다. 감사합니다!"}}}  # fmt: skip
        self.enqueue(StoryJob("Consultation", "reply in the user's chat", reply, "delivered"))
        return True

    def burst(self) -> bool:
        self.say("[bold]6. Sinch has a bad moment[/bold]: every send answered 503; the jobs wait and retry")
        self.sim("PUT", "/_sim/faults", json={"http_5xx": 1.0})
        burst = []
        for number, customer in enumerate(("이서연", "박지훈", "최유나"), start=1):
            parameters = {"customer": customer, "order_id": f"B-{1000 + number}"}
            request = {"type": "alimtalk", "to": {"msisdn": f"010-5555-010{number}"},
                       "template": {"id": "order_shipped", "parameters": parameters}}  # fmt: skip
            item = StoryJob("Sinch 503", f"order shipped #{number}", request, "delivered", retried)
            self.enqueue(item)
            burst.append(item)
        retrying = self.wait(lambda: all(item.job and item.job.attempts >= 2 for item in burst), 30, "retries")
        self.sim("PUT", "/_sim/faults", json={})
        self.say("  Sinch recovered; the retried jobs go out" if retrying else "  [red]no retries seen[/red]")
        return retrying

    def run(self, window: SendingWindow) -> bool:
        self.alimtalk()
        self.friendtalk()
        self.refused()
        self.night(window)
        sent = self.wait(lambda: all(item.job and item.job.status not in ("queued", "sending") for item in self.jobs),
                         30, "the first messages to be sent")  # fmt: skip
        conversed = self.conversation()
        if sent:  # the burst starts once nothing else is in flight, so only its own jobs meet the 503s
            self.wait(lambda: all(item.job and item.job.status not in ("queued", "sending") for item in self.jobs),
                      30, "the reply to be sent")  # fmt: skip
        burst = self.burst()
        self.say("[bold]7. Receipts[/bold]: KakaoTalk reports each delivery back through the webhook")
        settled = self.wait(lambda: all(item.problem() is None for item in self.jobs), 45, "every receipt")
        return sent and conversed and burst and settled


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together while chosen, so they differ)."""
    with ExitStack() as stack:
        probes = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def too_narrow(job: Job) -> str | None:
    reasons = [event.reason for event in job.events if event.to_status == "rejected"]
    return None if any("media.width" in reason for reason in reasons) else f"rejected for {reasons}, not media.width"


def retried(job: Job) -> str | None:
    return None if job.attempts >= 2 else f"sent after {job.attempts} attempt(s), expected a retry"


def summary(story: Story, console: Console) -> bool:
    table = Table(title="what became of each message", title_justify="left")
    for column in ("chapter", "message", "outcome", "as expected"):
        table.add_column(column, overflow="fold")
    failures = 0
    for item in story.jobs:
        problem = item.problem()
        failures += problem is not None
        job = item.job
        outcome = "-" if job is None else job.status + (f" after {job.attempts} attempts" if job.attempts > 1 else "")
        if job is not None and job.status == "scheduled" and job.not_before:
            outcome += f", goes {job.not_before.astimezone(KST):%Y-%m-%d %H:%M} KST"
        table.add_row(item.chapter, item.label, outcome, "[green]yes[/green]" if problem is None else f"[red]{problem}")
    for refusal in story.refusals:
        problem = refusal.problem()
        failures += problem is not None
        rules = ", ".join(sorted({violation["rule"] for violation in refusal.found})) or "-"
        table.add_row("Refused", refusal.label, f"422 {rules}", "[green]yes[/green]" if problem is None else problem)
    console.print()
    console.print(table)
    total = len(story.jobs) + len(story.refusals)
    receipts = sum(1 for item in story.jobs if item.job and item.job.status == "delivered")
    console.print(f"{total - failures} of {total} messages as the story expects; {receipts} delivery receipts matched.")
    return failures == 0


def run_demo(console: Console, options: SandboxOptions, now: datetime | None = None) -> int:
    window_text, parked_at = demo_window(now or datetime.now(UTC))
    options = SandboxOptions(**{**options.__dict__, "friendtalk_window": window_text,
                                "extra_env": (("KAKAO_DISPATCH_RETRY_BASE_SECONDS", "0.5"),)})  # fmt: skip
    started = time.monotonic()
    sandbox = Sandbox(options, on_progress=lambda line: console.print(f"  [dim]{line}[/dim]"))
    console.print("[bold]kakao-dispatch demo[/bold]: starting the sandbox")
    with stop_signals_raise_interrupt():
        try:
            sandbox.start()
        except SandboxError as error:
            console.print(f"kakao-dispatch demo: {error}", style="red", highlight=False)
            sandbox.stop()
            return 1
        story = Story(sandbox, console, parked_at)
        try:
            for line in sandbox.describe():
                console.print(f"  {line}", highlight=False)
            console.print(f"  FriendTalk window for this demo: {window_text} KST (KakaoTalk's is 08:00-21:00; "
                          "the end moves so that the story can run at any hour)", highlight=False)  # fmt: skip
            with Live(story.render(), console=console, refresh_per_second=4) as live:
                story.live = live
                finished = story.run(SendingWindow.parse(window_text))
                story.live = None
            ok = summary(story, console) and finished
        except KeyboardInterrupt:
            console.print("interrupted")
            return 130
        finally:
            story.close()
            sandbox.stop()
    seconds = time.monotonic() - started
    console.print(("[green]demo passed[/green]" if ok else "[red]demo failed[/red]") + f" in {seconds:.0f} s; "
                  "the sandbox is stopped and removed. `kakao-dispatch sandbox` keeps it running.")  # fmt: skip
    return 0 if ok else 1


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        fixed_ports: Annotated[
            bool, typer.Option(help="Use the sandbox's default ports (8080, 8081, 6390, 5555) instead of free ones.")
        ] = False,
    ) -> None:
        """Run the whole system on an embedded Redis and the simulator, and tell its story (exit 0: as expected)."""
        options = SandboxOptions()
        if not fixed_ports:
            api, sim, redis_port, flower = free_ports(4)
            options = SandboxOptions(api_port=api, sim_port=sim, redis_port=redis_port, flower_port=flower)
        console = Console()
        if not console.is_terminal:  # a log or a pipe: wide enough that the tables stay readable
            console = Console(width=120)
        raise typer.Exit(run_demo(console, options))
