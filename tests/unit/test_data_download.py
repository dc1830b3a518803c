"""Downloads without the internet: a real HTTP server on 127.0.0.1 stands in for Zenodo.

$SYNTHMED_MEDMNIST_URL points the data layer at the local server (a mirror serving the same file
names); the MD5 still comes from medmnist's INFO, so a served file either has INFO's MD5 (patched
here to the served file's, since the official bytes are not available offline) or is refused.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest
from medmnist import INFO

from synthmed.data import load_dataset
from synthmed.data.medmnist import download_file
from synthmed.errors import DataFormatError, DataNotFoundError
from test_data_medmnist import write_medmnist


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path/served`` on 127.0.0.1 (a free port); yields (base_url, folder, requests)."""
    root = tmp_path / "served"
    root.mkdir()
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, _Handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def online(monkeypatch, server):
    """Downloads allowed, MedMNIST URLs pointing at the local server."""
    monkeypatch.delenv("SYNTHMED_OFFLINE", raising=False)
    monkeypatch.setenv("SYNTHMED_MEDMNIST_URL", server[0])
    return server


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_file_right_md5_lands_atomically(server, tmp_path, capsys):
    url, root, _ = server
    src = write_medmnist(root / "pneumoniamnist.npz")
    dest = tmp_path / "data" / "pneumoniamnist.npz"
    download_file(f"{url}/pneumoniamnist.npz", dest, _md5(src))
    assert dest.read_bytes() == src.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["pneumoniamnist.npz"]  # no temp file beside it
    err = capsys.readouterr().err
    assert "saved pneumoniamnist.npz" in err and str(dest.parent) in err


def test_download_file_wrong_md5_keeps_nothing(server, tmp_path):
    url, root, _ = server
    write_medmnist(root / "pneumoniamnist.npz")
    dest = tmp_path / "data" / "pneumoniamnist.npz"
    with pytest.raises(DataFormatError) as err:
        download_file(f"{url}/pneumoniamnist.npz", dest, "0" * 32)
    msg = str(err.value)
    assert "MD5" in msg and "0" * 32 in msg and "\n" not in msg
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # neither the file nor a temp file


def test_load_dataset_fetches_a_missing_file_and_says_where(online, tmp_path, monkeypatch, capsys):
    url, root, requests = online
    src = write_medmnist(root / "pneumoniamnist.npz")
    monkeypatch.setitem(INFO["pneumoniamnist"], "MD5", _md5(src))
    cache = tmp_path / "fresh" / "data"  # a fresh machine: not even the folder exists
    data = load_dataset("pneumoniamnist", data_dir=cache)
    assert len(data) == 20 and (cache / "pneumoniamnist.npz").read_bytes() == src.read_bytes()
    assert requests == ["/pneumoniamnist.npz"]
    err = capsys.readouterr().err
    assert "saved pneumoniamnist.npz" in err and str(cache) in err and "MD5 checked" in err
    load_dataset("pneumoniamnist", data_dir=cache)  # present now: no second request
    assert requests == ["/pneumoniamnist.npz"]


def test_load_dataset_refuses_a_file_whose_md5_differs_from_medmnist_info(online, tmp_path):
    url, root, _ = online
    write_medmnist(root / "pneumoniamnist.npz")  # not the official bytes: INFO's MD5 differs
    cache = tmp_path / "data"
    with pytest.raises(DataFormatError) as err:
        load_dataset("pneumoniamnist", data_dir=cache)
    msg = str(err.value)
    assert INFO["pneumoniamnist"]["MD5"] in msg and "nothing was kept" in msg and "\n" not in msg
    assert list(cache.iterdir()) == []


def test_offline_env_never_downloads_and_says_file_folder_url_md5(online, tmp_path, monkeypatch):
    url, root, requests = online
    write_medmnist(root / "pneumoniamnist.npz")
    monkeypatch.setenv("SYNTHMED_OFFLINE", "1")
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("pneumoniamnist", data_dir=tmp_path / "data")
    msg = str(err.value)
    assert requests == []
    for part in ("pneumoniamnist.npz", str(tmp_path / "data"), f"{url}/pneumoniamnist.npz",
                 INFO["pneumoniamnist"]["MD5"], "SYNTHMED_OFFLINE"):
        assert part in msg
    assert "\n" not in msg


def test_without_mirror_the_url_is_medmnists_own(monkeypatch, tmp_path):
    monkeypatch.delenv("SYNTHMED_MEDMNIST_URL", raising=False)
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("bloodmnist", size=64, data_dir=tmp_path)
    assert INFO["bloodmnist"]["url_64"] in str(err.value) and INFO["bloodmnist"]["MD5_64"] in str(err.value)


def test_unreachable_server_is_one_line_and_keeps_nothing(monkeypatch, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("SYNTHMED_OFFLINE", raising=False)
    monkeypatch.setenv("SYNTHMED_MEDMNIST_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(DataNotFoundError, match="could not download pneumoniamnist.npz") as err:
        load_dataset("pneumoniamnist", data_dir=tmp_path / "d")
    assert "\n" not in str(err.value) and not any((tmp_path / "d").iterdir())


def test_download_false_never_downloads(online, tmp_path):
    url, root, requests = online
    write_medmnist(root / "pneumoniamnist.npz")
    with pytest.raises(DataNotFoundError, match="download=True"):
        load_dataset("pneumoniamnist", data_dir=tmp_path, download=False)
    assert requests == [] and not (tmp_path / "pneumoniamnist.npz").exists()
