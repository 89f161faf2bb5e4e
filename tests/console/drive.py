"""Drives the console in headless Chromium as an operator would on a bad morning.

Run by tests/console.rs against a real `inbox serve`, with
CONSOLE_URL, CONSOLE_TOKEN, CONSOLE_CHROMIUM, CONSOLE_SCREENSHOTS and CONSOLE_EXPECTED
(what the inbox holds, as JSON). Exits non-zero, saying why, on the first thing that is
not as it should be, or if the page logged an error.
"""

import json
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import expect, sync_playwright

URL = os.environ["CONSOLE_URL"]
TOKEN = os.environ["CONSOLE_TOKEN"]
CHROMIUM = os.environ["CONSOLE_CHROMIUM"]
SHOTS = Path(os.environ["CONSOLE_SCREENSHOTS"])
EXPECTED = json.loads(os.environ["CONSOLE_EXPECTED"])
# The viewer's zone: half an hour off UTC, so a time shown in UTC cannot pass for it.
ZONE = "Asia/Kolkata"
PAGE_SIZE = 50

expect.set_options(timeout=30_000)


def step(text):
    print(f"- {text}", flush=True)


def watch(page, errors):
    page.on(
        "console",
        lambda message: errors.append(f"console {message.type}: {message.text}")
        if message.type in ("error", "warning")
        else None,
    )
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))


def sign_in(page):
    page.goto(URL)
    expect(page.locator("#sign-in")).to_be_visible()
    page.fill("#token", TOKEN)
    page.keyboard.press("Enter")
    expect(page.locator("#list-view")).to_be_visible()
    assert TOKEN not in page.url, "the token is in the address"


def count_of(page, state):
    return page.locator(f'#counts a[data-state="{state}"] b')


def no_sideways_scroll(page, where):
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{where}: the page is {overflow}px wider than the phone"


def main():
    dead = EXPECTED["dead"]
    total = EXPECTED["total"]
    errors = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )

        step("a wrong token is refused, and nothing is shown")
        context = browser.new_context()
        page = context.new_page()
        page.goto(URL)
        page.fill("#token", "not-the-token")
        page.click("#sign-in-form button[type=submit]")
        expect(page.locator("#sign-in-error")).to_contain_text("refused")
        expect(page.locator("#list-view")).to_be_hidden()
        assert page.evaluate("sessionStorage.length") == 0
        context.close()

        context = browser.new_context(
            viewport={"width": 1280, "height": 900},
            timezone_id=ZONE,
            locale="en-US",
            accept_downloads=True,
        )
        page = context.new_page()
        watch(page, errors)
        started = time.monotonic()

        step("sign in with the keyboard")
        page.goto(URL)
        page.screenshot(path=SHOTS / "sign-in.png")
        sign_in(page)
        expect(count_of(page, "operator_required")).to_have_text(str(dead))
        expect(count_of(page, "all")).to_have_text(str(total))
        rows = page.locator("#webhooks tbody tr")
        expect(rows).to_have_count(PAGE_SIZE)
        page.screenshot(path=SHOTS / "list.png")

        step("page through the list")
        page.click("#older")
        expect(page.locator("#page-label")).to_have_text("page 2")
        expect(rows).to_have_count(total - PAGE_SIZE)
        expect(page.locator("#older")).to_be_disabled()
        page.click("#newer")
        expect(rows).to_have_count(PAGE_SIZE)

        step("filter by status, origin and event type")
        page.select_option("select[name=status]", "operator_required")
        page.click("#filters button[type=submit]")
        expect(page).to_have_url(re.compile(r"status=operator_required"))
        # The filtered page replaces the first page, which has as many rows.
        others = page.locator("#webhooks tbody .state:not(.state-operator_required)")
        expect(others).to_have_count(0)
        expect(rows).to_have_count(PAGE_SIZE)
        page.fill("input[name=origin]", "stripe")
        page.click("#filters button[type=submit]")
        expect(page.locator("#empty")).to_be_visible()
        page.fill("input[name=origin]", "")
        page.select_option("select[name=status]", "")
        page.fill("input[name=type]", "payment_intent.succeeded")
        page.click("#filters button[type=submit]")
        expect(rows).to_have_count(EXPECTED["completed"])
        page.click("#filters button[type=reset]")
        expect(rows).to_have_count(PAGE_SIZE)

        step("search by id from the keyboard, open it with Enter")
        # Held still: a refresh between focusing a row and pressing Enter would replace it.
        page.uncheck("#auto-refresh")
        page.locator("body").press("/")
        search = page.locator("input[name=search]")
        expect(search).to_be_focused()
        search.type(EXPECTED["open"])
        page.keyboard.press("Enter")
        expect(rows).to_have_count(1)
        page.locator("#webhooks tbody a").first.press("Enter")
        view = page.locator("#webhook-view")
        expect(view).to_be_visible()

        step("the webhook: status, attempts, dead letter, headers, payload, local times")
        facts = page.locator("#webhook-facts")
        expect(facts).to_contain_text(EXPECTED["open"])
        expect(facts).to_contain_text("operator_required")
        expect(page.locator("#attempts tbody tr")).to_have_count(1)
        expect(page.locator("#attempts tbody")).to_contain_text("operator_required")
        expect(page.locator("#dead-letters tbody tr")).to_have_count(1)
        expect(page.locator("#dead-letters tbody")).to_contain_text("410")
        expect(page.locator("#headers")).to_contain_text("content-type")
        pretty = json.dumps(json.loads(EXPECTED["open_payload"]), indent=2)
        expect(page.locator("#payload")).to_have_text(pretty)
        received = datetime.fromtimestamp(EXPECTED["open_received_at"] / 1000, ZoneInfo(ZONE))
        shown = received.strftime("%-I:%M:%S %p")
        expect(facts.locator("time").first).to_contain_text(shown)
        page.screenshot(path=SHOTS / "webhook.png", full_page=True)
        with page.expect_download() as download:
            page.click("#download")
        raw = Path(download.value.path()).read_bytes()
        assert raw == EXPECTED["open_payload"].encode(), "the download is not the raw payload"

        step("replay it: a confirmation, then it completes")
        page.click("#replay-one")
        expect(page.locator("#confirm")).to_be_visible()
        page.click("#confirm-ok")
        expect(page.locator("#replay-result")).to_contain_text("Replayed")
        expect(facts).to_contain_text("completed")
        expect(page.locator("#attempts tbody tr")).to_have_count(2)
        expect(page.locator("#replay-one")).to_be_hidden()
        page.screenshot(path=SHOTS / "replayed.png", full_page=True)

        step("replay every other dead webhook: Escape cancels, then confirm")
        page.click("#back")
        expect(page.locator("#list-view")).to_be_visible()
        page.check("#auto-refresh")
        page.select_option("select[name=status]", "operator_required")
        page.click("#filters button[type=submit]")
        left = dead - 1
        replay_all = page.locator("#replay-all")
        expect(replay_all).to_have_text(f"Replay {left} operator_required…")
        replay_all.click()
        expect(page.locator("#confirm-text")).to_contain_text(f"Replay {left} ")
        page.keyboard.press("Escape")
        expect(page.locator("#confirm")).to_be_hidden()
        expect(count_of(page, "operator_required")).to_have_text(str(left))
        replay_all.click()
        page.click("#confirm-ok")
        expect(page.locator("#replay-result-list")).to_have_text(f"Replayed {left} of {left}.")
        expect(count_of(page, "operator_required")).to_have_text("0")
        expect(count_of(page, "completed")).to_have_text(str(EXPECTED["completed"] + dead))
        took = time.monotonic() - started
        print(f"the morning took {took:.1f} s in the browser", flush=True)
        assert took < 60, f"the morning took {took:.0f} s"
        page.select_option("select[name=status]", "")
        page.click("#filters button[type=submit]")
        expect(rows).to_have_count(PAGE_SIZE)
        page.screenshot(path=SHOTS / "list-after.png")
        context.close()

        step("on a phone")
        context = browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            timezone_id=ZONE,
        )
        page = context.new_page()
        watch(page, errors)
        sign_in(page)
        expect(page.locator("#webhooks tbody tr")).to_have_count(PAGE_SIZE)
        no_sideways_scroll(page, "the list")
        page.screenshot(path=SHOTS / "phone-list.png")
        page.locator("#webhooks tbody a").first.tap()
        expect(page.locator("#webhook-view")).to_be_visible()
        expect(page.locator("#payload")).not_to_be_empty()
        no_sideways_scroll(page, "a webhook")
        page.screenshot(path=SHOTS / "phone-webhook.png", full_page=True)
        context.close()
        browser.close()

    if errors:
        print("the page logged errors:\n" + "\n".join(errors), flush=True)
        return 1
    print("no console errors", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
