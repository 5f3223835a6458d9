"""The weight store on a local mirror: download, verify, cache, refuse, retry (loopback only)."""

import http.server
import os
import socket
import threading

import pytest

import tfdefense
from tfdefense.zoo import cards, store

NAME = "classifier_c_mnist"  # the smallest entry (0.8 MB)


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The package as a wheel install sees it: no checkout, an empty cache, a file:// mirror."""
    mirror = tmp_path / "mirror"
    index = store.release(str(mirror), [NAME])  # from the checkout's saved_models/
    assert set(index["entries"][NAME]["files"]) == set(store.packaged_card(NAME)["files"])
    monkeypatch.setattr(store, "checkout_dir", lambda: None)
    monkeypatch.setattr(store, "BACKOFF_S", 0.0)
    monkeypatch.delenv(cards.MODELS_ENV, raising=False)
    monkeypatch.setenv(store.HOME_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(store.URL_ENV, mirror.as_uri())
    return mirror


def test_download_verifies_then_caches(installed, tmp_path):
    assert store.status(NAME) == "downloadable"
    model = tfdefense.load(NAME)
    assert model.count_params() == 199210 and store.status(NAME) == "cached"
    cached = tmp_path / "cache" / NAME
    assert sorted(f for f in os.listdir(cached) if not f.endswith(".lock")) == sorted(store.packaged_card(NAME)["files"])
    # A cached copy is used as it is: the mirror may go away.
    os.environ[store.URL_ENV] = "http://127.0.0.1:9/nothing"
    assert tfdefense.load(NAME).count_params() == 199210


def test_a_corrupt_download_never_enters_the_cache(installed, tmp_path):
    fname = next(iter(store.packaged_card(NAME)["files"]))
    path = installed / NAME / fname
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(tfdefense.WeightsError) as info:
        tfdefense.load(NAME)
    message = str(info.value)
    assert fname in message and store.packaged_card(NAME)["files"][fname] in message
    assert cards.sha256(str(path)) in message and "nothing was cached" in message
    assert not [f for f in os.listdir(tmp_path / "cache" / NAME) if not f.endswith(".lock")]


def test_a_damaged_cached_file_is_fetched_again(installed, tmp_path):
    tfdefense.load(NAME)
    fname = next(iter(store.packaged_card(NAME)["files"]))
    with open(tmp_path / "cache" / NAME / fname, "ab") as f:
        f.write(b"x")
    folder, _ = store.resolve(NAME)
    assert cards.sha256(os.path.join(folder, fname)) == store.packaged_card(NAME)["files"][fname]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_mirror_says_what_to_do(installed, monkeypatch):
    url = f"http://127.0.0.1:{_free_port()}/weights"  # nothing listens there
    monkeypatch.setenv(store.URL_ENV, url)
    with pytest.raises(tfdefense.WeightsError) as info:
        tfdefense.load(NAME)
    message = str(info.value)
    assert url in message and NAME in message and cards.MODELS_ENV in message and "tfdefense download" in message


def test_a_dropped_connection_is_retried(installed, monkeypatch):
    requests = []

    class Flaky(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(installed), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            if len(requests) == 1:  # promise the whole file, send half, hang up
                size = os.path.getsize(os.path.join(str(installed), self.path.lstrip("/")))
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                self.wfile.write(b"\0" * (size // 2))
                self.close_connection = True
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv(store.URL_ENV, f"http://127.0.0.1:{server.server_address[1]}")
        assert tfdefense.load(NAME).count_params() == 199210
    finally:
        server.shutdown()
        server.server_close()
    assert len(requests) == 2 and requests[0] == requests[1]


def test_download_to_a_folder_makes_a_store(installed, tmp_path, monkeypatch):
    (folder,) = store.download([NAME], to=str(tmp_path / "offline"))
    assert cards.read_card(folder)["files"] == store.packaged_card(NAME)["files"]
    monkeypatch.setenv(cards.MODELS_ENV, str(tmp_path / "offline"))
    monkeypatch.setenv(store.URL_ENV, "http://127.0.0.1:9/nothing")
    assert store.status(NAME) == "here" and tfdefense.load(NAME).count_params() == 199210


def test_results_are_not_written_into_an_installed_package(installed):
    with pytest.raises(tfdefense.WeightsError, match="read-only|not written"):
        store.card_folder(NAME)
