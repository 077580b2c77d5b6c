# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A directory of generated manifests: plan against what is there, diff, and write atomically.

``dest`` may hold other files; compose_convert only touches the files it writes and keeps their list in the
index file ``.compose-convert.index`` (JSON: ``{"generator": ..., "files": {name: {"sha256", "kind", "name",
"services"}}}``; its extension keeps ``kubectl apply -f dest`` from reading it). A file that an earlier run wrote
and this run no longer produces is removed, but only when it still has the content recorded in the index (one
edited by hand is kept and reported).

Writing: every new or changed file is written into a temporary directory beside ``dest`` (same file system),
then moved into place with ``os.replace``; the index is replaced last. When ``dest`` does not exist, the whole
temporary directory is renamed to ``dest`` in one step. Nothing is staged before the conversion has succeeded,
so an error leaves ``dest`` as it was. Secret manifests are written 0600, the others 0644.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError, PlatformError

INDEX = ".compose-convert.index"
GENERATOR = "sophia_ai.platform.compose_convert"


def _sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return ""


def index_text(files):
    entries = {name: {"sha256": _sha(meta["text"]), "kind": meta["kind"], "name": meta["name"], "services": meta["services"]}
               for name, meta in files.items()}
    return json.dumps({"generator": GENERATOR, "files": entries}, indent=1, sort_keys=True) + "\n"


class Plan:
    """What a run would change in ``dest``."""

    def __init__(self, dest):
        self.dest = dest
        self.write = {}  # name -> (before text or None, after text, kind)
        self.remove = {}  # name -> before text
        self.kept = []  # stale files edited by hand
        self.foreign = []  # files we overwrite that the index did not list
        self.index = None  # new index text when it changes
        self.files = {}

    @property
    def changed(self):
        return bool(self.write or self.remove or self.index is not None)


def read_index(dest, name=INDEX):
    """(text, {file name: entry}) of the index file ``name`` in ``dest``; (None, {}) when there is none."""
    text = _read(os.path.join(dest, name))
    entries = {}
    if text:
        try:
            entries = (json.loads(text) or {}).get("files") or {}
        except ValueError:
            entries = {}
    return text, entries


def sort_stale(result, old, produced, skip):
    """Files an earlier run wrote (``old``, the index's entries) that this run does not produce: those with the
    recorded content go to ``result.remove``, those edited since to ``result.kept``; ``skip(name)`` leaves one out."""
    for name, entry in sorted(old.items()):
        if name in produced or skip(name):
            continue
        before = _read(os.path.join(result.dest, name))
        if before is None:
            continue
        if _sha(before) == (entry or {}).get("sha256"):
            result.remove[name] = before
        else:
            result.kept.append(name)


def plan(dest, files):
    """Compare the rendered ``files`` ({name: {"text", "kind", "name", "services"}}) with ``dest``."""
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise InputError("dest %s exists and is not a directory. Fix: give a directory (it is created when missing)" % dest,
                         key="dest", fix="give a directory")
    result = Plan(dest)
    result.files = files
    old_index_text, old = read_index(dest)
    for name, meta in sorted(files.items()):
        before = _read(os.path.join(dest, name))
        if before != meta["text"]:
            result.write[name] = (before, meta["text"], meta["kind"])
            if before is not None and name not in old:
                result.foreign.append(name)
    sort_stale(result, old, files, lambda name: "/" in name or name.startswith("."))
    new_index = index_text(files)
    if new_index != old_index_text:
        result.index = new_index
    return result


def _mask(text, kind):
    if text is None or kind != "Secret":
        return text or ""
    return "(Secret manifest, data hidden: sha256 %s)\n" % _sha(text)[:16]


def diffs(result):
    """Per-file diff dicts in the shape ansible's diff callback prints (secrets masked)."""
    out = []
    for name, (before, after, kind) in sorted(result.write.items()):
        out.append({"before_header": os.path.join(result.dest, name) if before is not None else "/dev/null",
                    "after_header": os.path.join(result.dest, name),
                    "before": _mask(before, kind), "after": _mask(after, kind)})
    for name, before in sorted(result.remove.items()):
        kind = (result.files.get(name) or {}).get("kind", "Secret" if name.startswith("secret-") else "")
        out.append({"before_header": os.path.join(result.dest, name), "after_header": "/dev/null",
                    "before": _mask(before, kind), "after": ""})
    return out


def _write(directory, name, text, kind):
    path = os.path.join(directory, name)
    # created with the final mode (no window where a Secret manifest is world-readable); no fsync, as ansible's
    # own atomic_move: the rename makes each file appear whole, and fsync per file cost 1.3 s for 560 files here
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if kind == "Secret" else 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600 if kind == "Secret" else 0o644)  # whatever the umask
    return path


def _prune_empty(dest, name):
    """Remove the directories of a removed file that are empty now, up to (not including) dest."""
    parent = os.path.dirname(name)
    while parent:
        try:
            os.rmdir(os.path.join(dest, parent))
        except OSError:
            return
        parent = os.path.dirname(parent)


def apply(result, index=INDEX, label="compose-convert"):
    """Write the plan. Everything is staged beside dest first; nothing in dest changes before staging is complete.

    File names may hold directories (``a/b.yaml``, gitops_export's tree): they are created as needed, and those a
    removed file leaves empty are removed. ``index``: the index file's name; ``label``: in the staging directory's name.
    """
    dest = os.path.abspath(result.dest)
    parent = os.path.dirname(dest)
    try:
        os.makedirs(parent, exist_ok=True)
        stage = tempfile.mkdtemp(prefix=".%s.%s-" % (os.path.basename(dest), label), dir=parent)
    except OSError as exc:
        raise PlatformError("cannot create a staging directory beside %s: %s" % (dest, exc.strerror), object=dest) from None
    try:
        for name, (_before, after, kind) in sorted(result.write.items()):
            if os.path.dirname(name):
                os.makedirs(os.path.join(stage, os.path.dirname(name)), exist_ok=True)
            _write(stage, name, after, kind)
        if result.index is not None:
            _write(stage, index, result.index, "index")
        if not os.path.exists(dest):
            for here, dirs, _names in os.walk(stage):
                for sub in dirs:
                    os.chmod(os.path.join(here, sub), 0o755)
            os.chmod(stage, 0o755)
            os.rename(stage, dest)
            return
        for name in sorted(result.write):
            if os.path.dirname(name):
                os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
            os.replace(os.path.join(stage, name), os.path.join(dest, name))
        for name in sorted(result.remove):
            try:
                os.unlink(os.path.join(dest, name))
            except FileNotFoundError:
                pass
            _prune_empty(dest, name)
        if result.index is not None:
            os.replace(os.path.join(stage, index), os.path.join(dest, index))
    except OSError as exc:
        raise PlatformError("writing the manifests to %s failed: %s" % (dest, exc), object=dest) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
