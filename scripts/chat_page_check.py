"""The server's chat page (/) as a person uses it: headless Chromium opens it, types a question,
presses Send, waits for the streamed answer to finish, then saves a screenshot.

    ~/.cache/llm-rs/openai-venv/bin/python scripts/chat_page_check.py \
        --base-url http://127.0.0.1:8080 --screenshot /tmp/chat.png

Needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver) and
selenium from scripts/fetch-openai-client.sh's venv. Prints {"answer", "stats", "screenshot"}
(and "error" when it failed) as JSON; exits 1 if the page gave no answer.
"""

import argparse
import json
import os
import sys

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # --no-sandbox: Chromium refuses to run as root with its sandbox on.
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1100,800"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager would otherwise try to download one.
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def set_field(driver, element_id, value):
    el = driver.find_element(By.ID, element_id)
    el.clear()
    el.send_keys(value)
    el.send_keys(Keys.TAB)  # fires `change`


def ask(driver, question, turn, timeout):
    """Sends one question; the finished answer's text, or raises with the page's error."""
    prompt = driver.find_element(By.ID, "prompt")
    prompt.clear()
    prompt.send_keys(question)
    driver.find_element(By.ID, "send").click()

    def finished(d):
        errors = d.find_elements(By.CSS_SELECTOR, ".message.error")
        if errors:
            return ("error", errors[-1].get_attribute("textContent"))
        done = d.find_elements(By.CSS_SELECTOR, '.message.assistant[data-done="true"]')
        return ("done", done[turn].get_attribute("textContent")) if len(done) > turn else False

    try:
        kind, text = WebDriverWait(driver, timeout, poll_frequency=0.25).until(finished)
    except TimeoutException:
        raise RuntimeError(f"no finished answer within {timeout} s; #stats: {driver.find_element(By.ID, 'stats').text!r}")
    if kind == "error":
        raise RuntimeError(f"the page shows an error: {text}")
    if not text.strip():
        raise RuntimeError("the answer is empty")
    return text


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8080")
    p.add_argument("--screenshot", required=True)
    p.add_argument("--question", default="What is the capital of France? Answer in one sentence.")
    p.add_argument("--follow-up", help="a second question in the same conversation")
    p.add_argument("--api-key")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each answer")
    args = p.parse_args()
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            sys.exit(f"chat_page_check: {path} is missing: apt-get install -y chromium chromium-driver")

    out = {"answer": None, "stats": None, "screenshot": args.screenshot}
    driver = browser()
    try:
        driver.set_page_load_timeout(30)
        driver.get(args.base_url.rstrip("/") + "/")
        driver.find_element(By.TAG_NAME, "summary").click()  # opens the settings
        if args.api_key:
            set_field(driver, "api_key", args.api_key)
        set_field(driver, "max_tokens", str(args.max_tokens))
        # The page lists the models first; until then it has nothing to send to.
        try:
            WebDriverWait(driver, 30).until(
                lambda d: d.find_element(By.ID, "model").text not in ("", "no model yet", "no model"))
        except TimeoutException:
            raise RuntimeError(f"the page found no model; #stats: {driver.find_element(By.ID, 'stats').text!r}")
        out["model"] = driver.find_element(By.ID, "model").text
        out["answer"] = ask(driver, args.question, 0, args.timeout)
        if args.follow_up:
            out["follow_up_answer"] = ask(driver, args.follow_up, 1, args.timeout)
        out["stats"] = driver.find_element(By.ID, "stats").text
        if "tokens/s" not in out["stats"]:
            raise RuntimeError(f"#stats has no tokens/s: {out['stats']!r}")
    except Exception as e:  # reported in the JSON, with the screenshot of the page as it was
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        try:
            driver.save_screenshot(args.screenshot)
            out["console"] = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        finally:
            driver.quit()
    print(json.dumps(out, indent=2))
    sys.exit(1 if "error" in out else 0)


if __name__ == "__main__":
    main()
