"""The search page in a real browser: `twotower serve` on a free port, headless Chromium (the system's package,
driven by Selenium through the system's chromedriver: nothing is downloaded), a typed query, the results.

A screenshot of the page with its results is saved as `search-page.png` in the test's tmp folder.
`make browser` (part of `make test`) installs chromium and chromium-driver; without /usr/bin/chromium the test
is skipped, saying so.
"""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tiny_models import first_passages, make_checkpoint

from twotower.search import Searcher, build_index

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium: `make browser` installs chromium and chromium-driver"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def corpus(msmarco_dir) -> dict[str, str]:
    return first_passages(msmarco_dir, 300)


@pytest.fixture(scope="module")
def index(corpus, tmp_path_factory) -> Path:
    """A dense-only index (built without its BM25 part): the page shows no mode switch."""
    root = tmp_path_factory.mktemp("served")
    ckpt = make_checkpoint(root / "best.pt", list(corpus.values()))
    build_index(ckpt, corpus, root / "index", progress=False, bm25=False)
    return root / "index"


@pytest.fixture(scope="module")
def hybrid_index(corpus, tmp_path_factory) -> Path:
    """An index with its BM25 part (the default): it serves dense, bm25 and hybrid."""
    root = tmp_path_factory.mktemp("served-hybrid")
    build_index(make_checkpoint(root / "best.pt", list(corpus.values())), corpus, root / "index", progress=False)
    return root / "index"


@contextlib.contextmanager
def serving(index: Path, api_key: str | None = None):
    """`twotower serve` in its own process, as a user starts it; yields its base URL once /healthz answers."""
    port = free_port()
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    env.pop("TWOTOWER_API_KEY", None)
    if api_key:
        env["TWOTOWER_API_KEY"] = api_key
    log_path = index.parent / f"server-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed below, after the process
    process = subprocess.Popen(
        [sys.executable, "-m", "twotower.cli", "serve", "--index", str(index), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"twotower serve exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2).close()
                break
            except urllib.error.HTTPError:  # 401: up, and asking for the key
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"twotower serve did not answer in 120 s:\n{log_path.read_text()}")
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    assert api_key is None or api_key not in log_path.read_text(), "the server logged its API key"


@pytest.fixture(scope="module")
def server(index):
    with serving(index) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look anything up
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def test_type_a_query_and_see_the_results(server, browser, corpus, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    pid, query = list(corpus.items())[7]  # a passage searched with its own text comes back first
    wait = WebDriverWait(browser, 30)

    browser.get(server + "/")
    wait.until(seen.text_to_be_present_in_element((By.ID, "index-info"), "300 passages"))
    assert not browser.find_element(By.ID, "modes").is_displayed()  # dense only: no switch to show
    box = browser.find_element(By.ID, "query")
    box.send_keys(query, Keys.ENTER)
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "li.hit")) == 10)

    hits = browser.find_elements(By.CSS_SELECTOR, "li.hit")
    assert hits[0].find_element(By.CSS_SELECTOR, ".pid").text == pid
    assert float(hits[0].find_element(By.CSS_SELECTOR, ".score").text) > 0.9
    assert browser.find_elements(By.CSS_SELECTOR, "li.hit mark"), "query words are highlighted"
    timings = browser.find_element(By.ID, "timings").text
    assert all(stage in timings for stage in ("encode", "search", "fetch", "total")) and " ms" in timings
    browser.save_screenshot(str(tmp_path / "search-page.png"))
    assert (tmp_path / "search-page.png").stat().st_size > 10_000

    box.clear()
    box.send_keys("   ", Keys.ENTER)
    wait.until(seen.visibility_of_element_located((By.ID, "error")))
    assert browser.find_element(By.ID, "error").text == "the query is empty: give some words to search for"


def test_behind_an_api_key_the_page_works_with_the_key_as_basic_auth(index, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    key = "browser-test-key-0123456789"
    with serving(index, api_key=key) as url:
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(f"{url}/", timeout=5)

        # What a browser does after its login prompt: every request of the page carries the key, fetch() included.
        browser.get(url.replace("http://", f"http://anyone:{key}@") + "/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda b: "300 passages" in b.find_element(By.ID, "index-info").text)
        browser.find_element(By.ID, "query").send_keys("coffee slogan", Keys.ENTER)
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "li.hit")) == 10)


@pytest.fixture
def hybrid_server(hybrid_index):
    """The app over an index that serves three modes, under uvicorn in a thread of this process."""
    import uvicorn

    from twotower.serve import SearchService, create_app

    with Searcher.load(hybrid_index, device="cpu") as searcher:
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(SearchService(searcher)), host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
        server.should_exit = True
        thread.join(timeout=10)


def test_the_mode_switch_shows_the_served_modes_and_switches(hybrid_server, browser, corpus):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    pid, query = list(corpus.items())[7]
    wait = WebDriverWait(browser, 30, ignored_exceptions=[StaleElementReferenceException])  # the list is redrawn
    browser.get(hybrid_server + "/")
    wait.until(lambda b: "300 passages" in b.find_element(By.ID, "index-info").text)

    switch = browser.find_element(By.ID, "modes")
    assert switch.is_displayed() and switch.text.split() == ["dense", "bm25", "hybrid"]
    browser.find_element(By.ID, "query").send_keys(query)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "li.hit")) == 10)
    assert browser.find_element(By.CSS_SELECTOR, "li.hit .pid").text == pid

    assert "bm25" not in browser.find_element(By.ID, "timings").text
    switch.find_elements(By.TAG_NAME, "label")[2].click()  # hybrid: the passage's own words find it first too
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda b: "fusion" in b.find_element(By.ID, "timings").text)  # the stages hybrid ran
    assert "bm25" in browser.find_element(By.ID, "timings").text
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "li.hit .pid")[0].text == pid)
