"""The dashboard in a real browser: Debian's chromium driven by Playwright (no browser is
downloaded: it is launched by its executable path). Each test starts the example plugins,
an orchestrator and the dashboard in this process, on a memory bus.

Set ``JIRA_ORCHESTRATOR_SCREENSHOTS=1`` to write the pages' screenshots into docs/images
(docs/dashboard.md shows them); otherwise they go to the test's temporary folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from jira_orchestrator.messagebus import Message, get_message_bus
from jira_orchestrator.orchestrator import SagaStore
from tests.web._dashboard import CHROMIUM, CHROMIUM_ARGS, EXAMPLES, ROOT, ecosystem

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium: apt-get install chromium"
    ),
]

ISSUES = json.loads((EXAMPLES.parent / "issues.json").read_text())
TOKEN = "a-long-enough-dashboard-token"
HOSTILE = "<img src=x onerror=window.__xss=1><script>window.__xss=2</script>"
WAIT = 20_000  # ms: generous, the machine may be busy; each wait ends on its event
expect.set_options(timeout=WAIT)


def issue(key: str) -> dict[str, Any]:
    return next(i for i in ISSUES if i["key"] == key)


async def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Wait until ``check()`` holds (something another task does), at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


async def open_page(browser: Browser, dialogs: list[str] | None = None) -> Page:
    context = await browser.new_context(viewport={"width": 1180, "height": 720})
    page = await context.new_page()
    page.set_default_timeout(WAIT)

    async def on_dialog(dialog: Any) -> None:
        if dialogs is not None:
            dialogs.append(dialog.message)
        await dialog.accept()

    page.on("dialog", on_dialog)
    return page


async def live(page: Page) -> None:
    """Wait until the page's event stream is connected."""
    await expect(page.locator("#live-status")).to_be_visible(timeout=WAIT)


async def test_the_overview_lists_the_plugins_and_shows_a_breaker_opening(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_FAIL", "frontend-design-system")
    async with ecosystem(tmp_path, monkeypatch) as world:
        page = await open_page(browser)
        await page.goto(world.url + "/")
        for name in world.plugins:
            status = page.locator(f'tr[data-plugin="{name}"] [data-field="status"]')
            await expect(status).to_have_text("ready")
        breaker = page.locator('tr[data-plugin="frontend-design-system"] [data-field="breaker"]')
        await expect(breaker).to_have_text("–")
        await live(page)
        await page.evaluate("window.__loaded = true")
        result = await world.orchestrator.dispatch(issue("UI-301"))  # fails, twice: opens
        assert result.attempts[0].plugin == "frontend-design-system"
        await expect(breaker).to_have_text("open")
        success = page.locator(
            'tr[data-plugin="frontend-design-system"] [data-field="successRate"]'
        )
        await expect(success).to_contain_text("0%")
        assert await page.evaluate("window.__loaded") is True  # no reload: live
        await page.context.close()


async def test_a_decision_published_on_the_bus_appears_in_the_feed_without_a_reload(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ecosystem(tmp_path, monkeypatch) as world:
        page = await open_page(browser)
        await page.goto(world.url + "/decisions")
        await live(page)
        await page.evaluate("window.__loaded = true")
        decision = await world.orchestrator.router.aroute("Pods crash-loop after the Helm upgrade")
        row = page.locator(f'#decisions tr[data-id="{decision.request_id}"]')
        await expect(row).to_contain_text("k8s-helm-deployer")
        await expect(row).to_contain_text("Pods crash-loop after the Helm upgrade")
        assert await page.evaluate("window.__loaded") is True
        await row.get_by_role("link").click()
        await expect(page.locator("h1")).to_contain_text(decision.request_id)
        await expect(page.locator("#scores")).to_contain_text("k8s-helm-deployer")
        await page.context.close()


async def test_a_dead_letter_is_replayed_from_the_page_and_then_processed(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ecosystem(tmp_path, monkeypatch, plugins=()) as world:
        handled: list[Message] = []
        broken = True

        def work(message: Message) -> None:
            if broken:
                raise RuntimeError(HOSTILE)
            handled.append(message)

        # A plugin handling its own event: replayed as that plugin, within its rights.
        worker = get_message_bus("exec-automator")
        worker.subscribe("plugin/exec-automator/events", work)
        await worker.publish(topic="plugin/exec-automator/events", payload={"n": 1})
        await eventually(lambda: world.letters.count() == 1, "the dead letter to be stored")
        letter = world.letters.list()[0]

        dialogs: list[str] = []
        page = await open_page(browser, dialogs)
        await page.goto(world.url + "/dead-letters")
        row = page.locator(f'#letters tr[data-id="{letter.id}"]')
        await expect(row).to_contain_text("handler-error")
        await expect(row).to_contain_text(HOSTILE)  # shown as text, not run
        broken = False  # the bug is fixed: replay it
        await row.get_by_role("checkbox").check()
        await page.get_by_role("button", name="Replay selected").click()
        await expect(page.locator(".flash")).to_contain_text(f"replayed: {letter.id}")
        await eventually(lambda: len(handled) == 1, "the replayed message to be handled")
        assert handled[0].payload == {"n": 1}
        assert handled[0].metadata.retry_count == 1
        assert world.letters.get(letter.id).replay_count == 1
        await page.goto(world.url + f"/dead-letters/{letter.id}")
        await expect(page.locator("pre.payload")).to_contain_text(HOSTILE)
        assert await page.evaluate("window.__xss === undefined")
        assert dialogs == []
        await page.context.close()


async def test_a_correction_made_in_the_page_changes_the_next_decision(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "Write a script to rotate logs"
    async with ecosystem(tmp_path, monkeypatch) as world:
        page = await open_page(browser)
        await page.goto(world.url + "/route")
        await page.locator("textarea[name=text]").fill(text)
        await page.get_by_role("button", name="Route").click()
        verdict = page.locator("#route-result h2")
        await expect(verdict).to_have_text("→ frontend-design-system")
        await page.get_by_role("link", name="Open this decision").click()
        await page.locator("#correct select").select_option("k8s-helm-deployer")
        await page.get_by_role("button", name="Record the correction").click()
        await expect(page.locator(".flash")).to_contain_text(
            "frontend-design-system -> k8s-helm-deployer"
        )
        await page.goto(world.url + "/route")
        await page.locator("textarea[name=text]").fill(text)
        await page.get_by_role("button", name="Route").click()
        await expect(verdict).to_have_text("→ k8s-helm-deployer")
        await page.context.close()


async def test_a_post_without_the_csrf_token_is_refused(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ecosystem(tmp_path, monkeypatch, plugins=()) as world:
        letter_id, _ = world.letters.add({"reason": "expired", "message": {"topic": "a/b"}})
        page = await open_page(browser)
        await page.goto(world.url + f"/dead-letters/{letter_id}")
        await page.evaluate("document.querySelector('#letter-actions [name=csrf]').remove()")
        await page.get_by_role("button", name="Delete").click()
        await expect(page.locator("h1")).to_have_text("403 · csrf")
        status = await page.evaluate(
            """async (id) => (await fetch('/api/dead-letters/delete', {method: 'POST',
                headers: {'content-type': 'application/json'},
                body: JSON.stringify({ids: [id]})})).status""",
            letter_id,
        )
        assert status == 403
        assert world.letters.count() == 1  # nothing was deleted
        await page.context.close()


async def test_with_a_token_the_login_form_sets_a_strict_http_only_cookie(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ecosystem(tmp_path, monkeypatch, plugins=(), token=TOKEN) as world:
        page = await open_page(browser)
        await page.goto(world.url + "/tasks")
        await expect(page.locator("h1")).to_have_text("Sign in")
        await page.locator("input[name=token]").fill("wrong-token-wrong-token")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator(".flash.error")).to_have_text("wrong token")
        await page.locator("input[name=token]").fill(TOKEN)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("h1")).to_have_text("Tasks")
        assert page.url.endswith("/tasks")
        (cookie,) = await page.context.cookies()
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert TOKEN not in cookie["value"]
        assert TOKEN not in await page.content()
        await page.context.close()


async def test_screenshots_of_every_page(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_FAIL", "frontend-design-system")
    target = (
        ROOT / "docs" / "images" if os.environ.get("JIRA_ORCHESTRATOR_SCREENSHOTS") else tmp_path
    )
    target.mkdir(parents=True, exist_ok=True)
    async with ecosystem(tmp_path, monkeypatch) as world:
        for item in ISSUES[:8]:
            await world.orchestrator.dispatch(item)
        await world.orchestrator.bus.flush()
        assert world.orchestrator.dead_letters is not None
        await world.orchestrator.dead_letters.flush()
        world.letters.add(
            {
                "reason": "handler-error",
                "error": {"type": "RuntimeError", "message": "design-token service unreachable"},
                "subscriber": "frontend-design-system",
                "subscription": "plugin/frontend-design-system/request",
                "message": {"messageId": "m-1", "topic": "plugin/frontend-design-system/request"},
            }
        )
        sagas = world.dashboard.sagas
        assert isinstance(sagas, SagaStore)
        sagas.start_run("run-1", "provision-tenant", {"tenant": "acme"})
        sagas.step_started("run-1", 0, "create-namespace")
        sagas.set_step("run-1", 0, "completed", result={"namespace": "acme"})
        sagas.step_started("run-1", 1, "deploy-chart")
        sagas.set_step("run-1", 1, "failed", error="helm: timed out")
        sagas.set_step("run-1", 0, "compensated")
        sagas.set_run("run-1", "compensated", "deploy-chart failed")
        decision_id = world.orchestrator.router.store.recent_decisions(1)[0].request_id  # type: ignore[union-attr]
        letter_id = world.letters.list()[0].id
        page = await open_page(browser)
        shots = {
            "overview": "/",
            "decisions": "/decisions",
            "decision": f"/decisions/{decision_id}",
            "tasks": "/tasks",
            "dead-letters": "/dead-letters",
            "dead-letter": f"/dead-letters/{letter_id}",
            "sagas": "/sagas",
            "saga": "/sagas/run-1",
        }
        for name, path in shots.items():
            await page.goto(world.url + path)
            await expect(page.locator("h1")).to_be_visible()
            await page.screenshot(path=str(target / f"dashboard-{name}.png"))
        await page.goto(world.url + "/route")
        await page.locator("textarea[name=text]").fill("Pods crash-loop after the Helm upgrade")
        await page.get_by_role("button", name="Route").click()
        await expect(page.locator("#route-result")).to_be_visible()
        await page.screenshot(path=str(target / "dashboard-route.png"))
        for name in [*shots, "route"]:
            png = (target / f"dashboard-{name}.png").read_bytes()
            assert png.startswith(b"\x89PNG")
            assert len(png) < 400_000
        await page.context.close()
