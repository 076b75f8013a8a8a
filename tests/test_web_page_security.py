"""The enrollment page shows names and server messages as text, never as HTML (headless Chromium).

The reliability probe enrolled the name ``<img src=x onerror="window.__xss=1">`` through the page and the handler
ran: the success message was built with ``innerHTML``, and so were error messages that echo what was sent. Here the
same name is enrolled through the page (a real take from Chromium's fake microphone), and a language that names an
HTML payload comes back in an error message; neither may run, and both must show as the text they are.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from voiceclone_core.config import Settings
from voiceclone_core.service import build_service

from .test_web import WebServer, chromium_driver, fake_microphone, signed_in_page

NAME = '<img src=x onerror="window.__xss=1">'
LANGUAGE = "<img src=y onerror=window.__xss=2>"


@pytest.mark.slow
def test_names_and_messages_are_text_in_the_page(
    settings: Settings, fake_engine, speech_wav: Path, tmp_path: Path
) -> None:
    driver = chromium_driver(tmp_path / "chrome", *fake_microphone(speech_wav))
    from selenium.webdriver.common.by import By

    service = build_service(settings, engine=fake_engine)
    server = WebServer(service)
    xss = "return window.__xss"
    try:
        wait, find = signed_in_page(driver, server)
        find(By.ID, "name").send_keys(NAME)
        find(By.ID, "consent").send_keys("Mallory <b>Tester</b>")
        find(By.ID, "agree").click()
        find(By.ID, "record").click()
        time.sleep(9.0)
        find(By.ID, "stop").click()
        wait.until(lambda d: find(By.ID, "enroll").is_enabled())
        find(By.ID, "enroll").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".voice[data-voice]"))
        wait.until(lambda d: "Enrolled" in find(By.ID, "verdict").text)
        time.sleep(0.5)  # an <img> that had been parsed would have failed to load and run its handler by now
        assert driver.execute_script(xss) is None
        assert find(By.ID, "verdict").text == f"Enrolled as “{NAME}”."
        assert not driver.find_elements(By.CSS_SELECTOR, "#report img, #voices img")
        row = find(By.CSS_SELECTOR, ".voice[data-voice] span").text
        assert NAME in row and "Mallory <b>Tester</b>" in row
        assert [v.name for v in service.voices()] == [NAME]

        # an error message that echoes what was sent: a language option carrying HTML, refused by the server
        driver.execute_script(
            "const s = document.getElementById('language');"
            "s.add(new Option('x', arguments[0])); s.value = arguments[0];"
            "document.getElementById('enroll').disabled = false;",
            LANGUAGE,
        )
        find(By.ID, "enroll").click()
        wait.until(lambda d: "invalid language" in find(By.ID, "verdict").text)
        time.sleep(0.5)
        assert driver.execute_script(xss) is None
        assert LANGUAGE in find(By.ID, "verdict").text and not driver.find_elements(By.CSS_SELECTOR, "#report img")

        # the control: the same payload parsed as HTML does run in this browser, so the checks above could fail
        driver.execute_script(
            "document.body.append(Object.assign(document.createElement('div'), {innerHTML: arguments[0]}))", NAME
        )
        wait.until(lambda d: d.execute_script(xss) == 1)
    finally:
        driver.quit()
        server.close()
        service.close()
