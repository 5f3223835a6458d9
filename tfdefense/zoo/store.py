"""The weight store: where an entry's files come from, verified before use.

The package carries every published entry's model card (``tfdefense/model_cards/<name>.json``,
the sha256 and size of each weight file) but no weight file. `resolve` finds the files the way
keras.applications and torchvision do, in this order:

1. an explicit ``folder`` (e.g. a training run's ``export/``), with its own card;
2. ``TFDEFENSE_MODELS_DIR/<name>/`` (a team's own store; its card, if any, describes it);
3. the source checkout's ``saved_models/<name>/`` when the package runs from one (the embedded
   default, so a clone works offline);
4. the user cache, ``TFDEFENSE_HOME`` (default: the platform cache folder, e.g. ``~/.cache/tfdefense``);
5. a download from ``TFDEFENSE_WEIGHTS_URL`` (``http(s)://`` or ``file://``, default `DEFAULT_URL`)
   into the cache: each file is streamed to a temporary name, its sha256 checked against the
   packaged card, and only then renamed into place, under a lock, so a corrupt or half-read
   file never enters the cache and two processes fetching one file leave one intact copy.

A mirror is a folder laid out as ``<name>/<file>`` (what `release` writes); any static file
server, object store or release page can host it.

Example:
    >>> from tfdefense import store
    >>> folder, card = store.resolve("classifier_c_mnist")    # doctest: +SKIP
    >>> store.status("classifier_c_mnist")                    # doctest: +SKIP
    'here'
"""

import contextlib
import hashlib
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; the atomic rename still keeps the cache intact
    fcntl = None

from tfdefense.utils import progress
from tfdefense.zoo import cards
from tfdefense.zoo.cards import CARD, MODELS_ENV, WeightsError, read_json, sha256, write_json

HOME_ENV = "TFDEFENSE_HOME"
URL_ENV = "TFDEFENSE_WEIGHTS_URL"
# Where the project publishes each release's weights (a `release` folder behind a static host).
DEFAULT_URL = "https://storage.googleapis.com/tfdefense/weights/v1"
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tfdefense/
PACKAGED = os.path.join(PACKAGE, "model_cards")
INDEX = "index.json"
RETRIES = 3
BACKOFF_S = 1.0  # wait before retry k: BACKOFF_S * 2**k seconds
TIMEOUT_S = 60


def packaged_card(name):
    """The card the package ships for ``name``, or None when ``name`` was never published."""
    path = os.path.join(PACKAGED, f"{name}.json")
    return read_json(path) if os.path.isfile(path) else None


def published():
    """Names of the entries whose cards the package ships, sorted."""
    return sorted(f[:-5] for f in os.listdir(PACKAGED) if f.endswith(".json")) if os.path.isdir(PACKAGED) else []


def checkout_dir():
    """The source checkout's ``saved_models/`` when the package runs from a checkout, else None."""
    root = os.path.dirname(PACKAGE)
    models = os.path.join(root, "saved_models")
    return models if os.path.isfile(os.path.join(root, "setup.cfg")) and os.path.isdir(models) else None


def cache_dir():
    """The user cache: ``TFDEFENSE_HOME``, else the platform's cache folder + ``tfdefense``."""
    if os.environ.get(HOME_ENV):
        return os.path.abspath(os.path.expanduser(os.environ[HOME_ENV]))
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA", os.path.expanduser("~"))
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "tfdefense")


def base_url():
    return os.environ.get(URL_ENV) or DEFAULT_URL


def local_folders(name):
    """``(where, folder)`` of every local store, in resolution order (the folder may not exist)."""
    out = []
    if os.environ.get(MODELS_ENV):
        out.append((MODELS_ENV, os.path.join(os.environ[MODELS_ENV], name)))
    if checkout_dir():
        out.append(("checkout", os.path.join(checkout_dir(), name)))
    out.append(("cache", os.path.join(cache_dir(), name)))
    return out


def _holds(folder, card):
    """Whether ``folder`` holds an entry: its own card, or every file ``card`` lists."""
    if os.path.isfile(os.path.join(folder, CARD)):
        return True
    return bool(card) and all(os.path.isfile(os.path.join(folder, f)) for f in card["files"])


def find(name):
    """``(where, folder, card)`` of the first local store holding ``name``, without verifying or
    downloading; ``(None, None, packaged card)`` when none does. A store's own card describes its
    files; the cache is described by the packaged card only (it holds what was downloaded)."""
    packaged = packaged_card(name)
    for where, folder in local_folders(name):
        if where == "cache":
            if packaged and _holds(folder, {"files": packaged["files"]}):
                return where, folder, packaged
        elif _holds(folder, packaged):
            own = os.path.join(folder, CARD)
            return where, folder, read_json(own) if os.path.isfile(own) else packaged
    return None, None, packaged


def card(name):
    """The card of ``name`` as `resolve` would use it, without reading any weight file
    (None when the entry is neither published nor in a local store)."""
    return find(name)[2]


def status(name):
    """``'here'`` (a local store other than the cache), ``'cached'``, ``'downloadable'`` (the package
    knows its files) or ``'not published'``."""
    where, _, packaged = find(name)
    if where == "cache":
        return "cached"
    if where:
        return "here"
    return "downloadable" if packaged else "not published"


def size(card_):
    """Total bytes of a card's weight files (None when the card does not record them)."""
    sizes = (card_ or {}).get("file_sizes") or {}
    return sum(sizes.values()) if sizes and set(sizes) == set(card_["files"]) else None


def resolve(name, folder=None, download=True):
    """A folder holding ``name``'s weight files, verified, and the card they match.

    Args:
        name: an entry name (used in messages and to find the files).
        folder: load from this folder (and its own card) instead of the stores.
        download: fetch from ``TFDEFENSE_WEIGHTS_URL`` into the cache when no store holds it.

    Returns:
        ``(folder, card)``.

    Raises:
        WeightsError: the files are missing, do not match their card, or cannot be downloaded.
    """
    if folder:
        return folder, cards.read_card(folder, verify=True)
    where, found, card_ = find(name)
    if where == "cache":
        try:
            return found, cards.verify_files(found, card_, source=f"the packaged card of {name}")
        except WeightsError:
            pass  # a stale or damaged cached copy: fetch the card's files again
    elif where:
        if card_ is None:
            raise WeightsError(f"{found} holds some of {name}'s files but no {CARD}; restore it or remove the folder.")
        return found, cards.verify_files(found, card_, source=os.path.join(found, CARD)
                                         if os.path.isfile(os.path.join(found, CARD)) else f"the packaged card of {name}")
    if card_ is None:
        raise WeightsError(f"{name} has no published weights (the package ships no card for it) and no local store "
                           f"holds it. Train it with `tfdefense train {name} --publish=DIR` and set {MODELS_ENV}=DIR, "
                           f"or load a training run's export with tfdefense.load({name!r}, folder=...).")
    if not download:
        raise WeightsError(f"{name} is not on this machine; `tfdefense download {name}` fetches it.")
    target = os.path.join(cache_dir(), name)
    fetch(name, card_, target)
    return target, card_


def fetch(name, card_, target, url=None):
    """Downloads the files of ``card_`` that ``target`` lacks (or holds damaged) from the mirror."""
    url = (url or base_url()).rstrip("/")
    os.makedirs(target, exist_ok=True)
    for fname, digest in card_["files"].items():
        origin = f"{url}/{urllib.parse.quote(name)}/{urllib.parse.quote(fname)}"
        download_file(origin, os.path.join(target, fname), digest, entry=name,
                      size=(card_.get("file_sizes") or {}).get(fname))


@contextlib.contextmanager
def _lock(path):
    """An exclusive lock beside ``path``: a second process waits, then finds the file in place."""
    if fcntl is None:
        yield
        return
    with open(path + ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield  # the lock file stays: removing it would let a third process lock a different inode


def download_file(origin, path, digest, *, entry, size=None):
    """Fetches ``origin`` to ``path`` unless ``path`` already has sha256 ``digest``: streamed to a
    temporary file, hashed, and renamed into place only when the hash matches; a dropped connection
    is retried `RETRIES` times. Raises `WeightsError` naming the URL, the entry and the offline
    alternatives."""
    with _lock(path):
        if os.path.isfile(path) and sha256(path) == digest:
            return path
        tmp = f"{path}.{os.getpid()}.part"
        error = None
        for attempt in range(RETRIES):
            try:
                found = _stream(origin, tmp, size, os.path.basename(path))
            except urllib.error.HTTPError as e:  # the server answered: retrying will not help
                error = f"HTTP {e.code} {e.reason}"
                break
            except (urllib.error.URLError, OSError, ConnectionError) as e:
                error = str(getattr(e, "reason", e))
                time.sleep(BACKOFF_S * 2 ** attempt)
                continue
            if found != digest:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(tmp)
                raise WeightsError(f"{origin} ({entry}: {os.path.basename(path)}) has sha256 {found}, but the "
                                   f"packaged card expects {digest}: the mirror serves a corrupt or different "
                                   "file; nothing was cached.")
            os.replace(tmp, path)
            return path
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise WeightsError(
            f"Cannot download {entry}'s {os.path.basename(path)} from {origin} ({error}). Offline, point "
            f"{MODELS_ENV} at a folder holding {entry}/ (`tfdefense download {entry} --to DIR` on a machine "
            f"that is online), run from a source checkout with saved_models/, or set {URL_ENV} to a reachable "
            "mirror (http(s):// or file://, as written by `tfdefense release`).")


def _stream(origin, tmp, size, label):
    """Writes ``origin`` to ``tmp`` with a progress bar; returns the sha256 of what was written."""
    h = hashlib.sha256()
    with urllib.request.urlopen(origin, timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:
        total = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        total = int(total) if total else size
        with progress.bar(None, desc=f"download {label}", total=total, unit="B", unit_scale=True) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                h.update(block)
                out.write(block)
                bar.update(len(block))
        if total is not None and out.tell() != total:
            raise ConnectionError(f"connection dropped after {out.tell()} of {total} bytes")
    return h.hexdigest()


def download(names, to=None):
    """Fetches ``names`` into the cache, or into ``to/<name>/`` with their cards (a folder that
    `TFDEFENSE_MODELS_DIR` or `TFDEFENSE_WEIGHTS_URL` can then point at). Entries already in a
    local store are copied from it, not downloaded. Returns the folders written."""
    out = []
    for name in names:
        card_ = packaged_card(name)
        if card_ is None:
            raise WeightsError(f"{name} has no published weights to download.")
        if to is None:
            out.append(resolve(name)[0])
            continue
        target = os.path.join(to, name)
        source = resolve(name, download=False)[0] if status(name) != "downloadable" else None
        if source and os.path.realpath(source) != os.path.realpath(target):
            os.makedirs(target, exist_ok=True)
            for fname in card_["files"]:
                _copy(os.path.join(source, fname), os.path.join(target, fname))
        elif not source:
            fetch(name, card_, target)
        write_json(os.path.join(target, CARD), card_)
        out.append(target)
    return out


def _copy(src, dst):
    tmp = f"{dst}.{os.getpid()}.part"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def release(out_dir, names=None):
    """Writes a mirror: ``out_dir/<name>/`` (weights and card) for every published entry (or
    ``names``) and ``out_dir/index.json`` (each entry's files, sha256 and sizes). Host the folder
    on any static file server and point `TFDEFENSE_WEIGHTS_URL` at it. Returns the index."""
    names = list(names or published())
    download(names, to=out_dir)
    index = {"tfdefense": _version(), "entries": {}}
    for name in names:
        card_ = packaged_card(name)
        index["entries"][name] = {
            "family": card_.get("family"), "dataset": card_.get("dataset"),
            "files": {f: {"sha256": d, "bytes": os.path.getsize(os.path.join(out_dir, name, f))}
                      for f, d in card_["files"].items()}}
    write_json(os.path.join(out_dir, INDEX), index)
    return index


def _version():
    from tfdefense.version import __version__
    return __version__


def card_folder(name, folder=None):
    """Where results measured on ``name`` are written into its card: ``folder`` when given, else
    the local store the weights come from (``TFDEFENSE_MODELS_DIR`` or the checkout's
    ``saved_models/``, whose card is then copied into the package too). The cache and an installed
    package's cards are read-only."""
    if folder:
        return folder
    where, found, _ = find(name)
    if where in (MODELS_ENV, "checkout") and os.path.isfile(os.path.join(found, CARD)):
        return found
    raise WeightsError(f"{name}'s card belongs to the installed package and is not written; pass a folder "
                       f"holding your copy of the entry (--source=DIR; `tfdefense download {name} --to DIR` "
                       f"makes one) or set {MODELS_ENV}.")


def sync_packaged(folder):
    """Copies the card in the checkout folder ``folder`` into the package (called after each write)."""
    checkout = checkout_dir()
    if checkout and os.path.realpath(os.path.dirname(os.path.normpath(folder))) == os.path.realpath(checkout):
        name = os.path.basename(os.path.normpath(folder))
        os.makedirs(PACKAGED, exist_ok=True)
        write_json(os.path.join(PACKAGED, f"{name}.json"), read_json(os.path.join(folder, CARD)))
