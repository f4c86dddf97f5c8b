"""The dashboard of a real ``kmm run``, in a real headless Chromium (Debian's ``chromium``,
driven by Playwright): it loads, shows the markets, updates after a fill, and its halt button
halts the bot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.mock.test_control import _bot, _until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.asyncio
@pytest.mark.timeout(150)
async def test_the_dashboard_shows_the_markets_follows_fills_and_halts(tmp_path: Path) -> None:
    assert HAVE_CHROMIUM, "no chromium: run sh scripts/install-system.sh (make test)"
    config = tmp_path / "config.yaml"
    config.write_text("record:\n  capture: false\n")
    async with _bot(tmp_path, config, 90) as bot, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{bot.url}#token={bot.token}")

            await expect(page.get_by_test_id("state")).to_have_text("quoting")
            rows = page.locator("#markets tr")
            await expect(rows).to_have_count(8)
            _, markets = await bot.get("api/markets")
            for market in markets:
                await expect(
                    page.locator(f'#markets tr[data-ticker="{market["ticker"]}"]')
                ).to_have_count(1)
            assert "token" not in page.url, "the token leaves the address bar"

            shown = int(await page.get_by_test_id("fills").inner_text())

            async def filled() -> bool:
                return int(await page.get_by_test_id("fills").inner_text()) > shown

            await _until(filled, "a fill on the dashboard", timeout_s=60)
            _, run = await bot.get("api/status")
            assert run["fills"] > shown
            points = int(await page.get_by_test_id("points").inner_text())
            assert points >= 1
            await expect(page.locator("#pnl-line")).not_to_have_attribute("points", "")

            await page.get_by_test_id("halt").click()

            await expect(page.get_by_test_id("state")).to_have_text("halted", timeout=15_000)
            _, risk = await bot.get("api/risk")
            assert risk["reason"] == "halted from the dashboard"
            await expect(page.locator("#orders tr")).to_have_count(0, timeout=15_000)
            await expect(page.get_by_test_id("resume")).to_be_enabled(timeout=15_000)
        finally:
            await browser.close()
