# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data of a stateful service's volumes, moved between a Swarm volume and a K3s PersistentVolumeClaim.

bluegreen_cutover (mode swarm_to_k3s, option ``volumes``) copies each named volume of the Swarm service into the
claim mounted at the same path in green while the front door holds the service's requests, and back again on a
rollback. This module is the pure part, unit-tested on real archives:

- :func:`plan_moves`: which Swarm volume and which claim each path of ``volumes`` names, from the Swarm service's
  mounts and green's pod template; errors name the option and the fix;
- :func:`normalise`: a tar stream (the Docker Engine's archive of a directory, or ``tar -c`` in green's pod) as a
  tar whose members are relative to the volume's root, and its manifest (every regular file's size and sha256,
  directories, symbolic links); device files and other special members are refused;
- :func:`parse_sums` / :func:`compare`: ``sha256sum`` lines of the copy against the manifest;
- :func:`write_snapshot`: the archive kept as a 0600 file (in a 0700 directory), with its sha256.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import posixpath
import re
import shlex
import tarfile
import time

from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError, PlatformError

CHUNK = 1 << 16


class CopyError(PlatformError):
    """A copy or its check failed; the caller keeps traffic where it was."""


def _mount_of(mounts, path):
    for mount in mounts or []:
        if posixpath.normpath(mount.get("Target") or "") == path:
            return mount
    return None


def unmoved_named_volumes(swarm_service, paths):
    """The mount paths of the Swarm service's named volumes that ``paths`` does not move, in mount order."""
    spec = ((swarm_service.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}
    moved = {posixpath.normpath(p) for p in paths or [] if isinstance(p, str)}
    return [posixpath.normpath(m["Target"]) for m in spec.get("Mounts") or []
            if m.get("Type") == "volume" and m.get("Source") and m.get("Target")
            and posixpath.normpath(m["Target"]) not in moved]


def plan_moves(paths, swarm_service, green_template, service_name):
    """``[{path, volume, claim, container}]`` for each path of ``volumes``.

    ``swarm_service``: the Swarm service as the Docker API shows it (its stack's volume names are in the
    mounts' ``Source``); ``green_template``: green's pod template. A path must be a named volume's mount of the
    Swarm service and a PersistentVolumeClaim's mount of one of green's containers.
    """
    spec = ((swarm_service.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}
    mounts = spec.get("Mounts") or []
    pod = (green_template or {}).get("spec") or {}
    claims = {v["name"]: (v.get("persistentVolumeClaim") or {}).get("claimName")
              for v in pod.get("volumes") or [] if v.get("name")}
    moves, seen = [], set()
    for index, raw in enumerate(paths or []):
        where = f"volumes[{index}]"
        if not isinstance(raw, str) or not raw.startswith("/") or raw.strip() in ("/", ""):
            raise InputError(f"{where} must be the absolute path a volume is mounted at (for example /data), got "
                             f"{raw!r}", key="volumes", reason="bad_volume")
        path = posixpath.normpath(raw)
        if path in seen:
            raise InputError(f"{where}: {path} is listed twice", key="volumes", reason="bad_volume")
        seen.add(path)
        mount = _mount_of(mounts, path)
        named = ", ".join(f"{m.get('Target')} ({m.get('Type')})" for m in mounts) or "none"
        if mount is None:
            raise InputError(f"{where}: the Swarm service {swarm_service.get('Spec', {}).get('Name')} mounts nothing at "
                             f"{path} (its mounts: {named}); name the Target of one of its volumes",
                             key="volumes", reason="bad_volume")
        if mount.get("Type") != "volume" or not mount.get("Source"):
            raise InputError(f"{where}: {path} is a {mount.get('Type')} mount of the Swarm service, not a named volume; "
                             "only named volumes move with the service (a bind mount's data lives on the host)",
                             key="volumes", reason="bad_volume")
        found = None
        for container in pod.get("containers") or []:
            for vm in container.get("volumeMounts") or []:
                if posixpath.normpath(vm.get("mountPath") or "") == path and claims.get(vm.get("name")):
                    found = (container["name"], claims[vm["name"]], vm.get("subPath") or "")
                    break
            if found:
                break
        if found is None:
            raise InputError(f"{where}: no container of green ({service_name}) mounts a PersistentVolumeClaim at "
                             f"{path}; deploy the service with its volumes as claims (compose_convert does, from the "
                             "compose file's named volumes)", key="volumes", reason="bad_volume")
        moves.append({"path": path, "volume": mount["Source"], "read_only": bool(mount.get("ReadOnly")),
                      "container": found[0], "claim": found[1]})
    return moves


def _member_name(name, prefix):
    """``name`` relative to the volume's root (``prefix`` is the archive's top directory, '' if none)."""
    name = name.lstrip("/")
    if name.startswith("./"):
        name = name[2:]
    if prefix:
        if name in (prefix, prefix + "/"):
            return ""
        if not name.startswith(prefix + "/"):
            return None
        name = name[len(prefix) + 1:]
    name = posixpath.normpath(name) if name else ""
    if name in (".", ""):
        return ""
    if name.startswith("../") or name == "..":
        return None
    return name


def normalise(stream, prefix=""):
    """Read a tar ``stream`` (a file object) and return (tar bytes relative to the volume root, manifest).

    ``prefix``: the archive's top directory (the Docker Engine's archive of ``/data`` holds ``data/...``); members
    outside it are refused. The manifest: ``files`` {path: {size, sha256, mode}}, ``dirs`` [path], ``links``
    {path: target}, ``bytes`` (sum of file sizes).
    """
    out = io.BytesIO()
    manifest = {"files": {}, "dirs": [], "links": {}, "bytes": 0}
    try:
        source = tarfile.open(fileobj=stream, mode="r|*")
    except tarfile.TarError as exc:
        raise CopyError(f"the volume's archive is not a tar stream: {exc}", reason="bad_archive") from None
    with source, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as target:
        try:
            for member in source:
                name = _member_name(member.name, prefix)
                if name is None:
                    raise CopyError(f"the volume's archive has a member outside the volume: {member.name!r}",
                                    reason="bad_archive")
                if not name:
                    continue  # the root itself: the claim's mount point exists already
                copy = tarfile.TarInfo(name)
                copy.mode, copy.mtime, copy.uid, copy.gid = member.mode, member.mtime, member.uid, member.gid
                copy.uname, copy.gname = member.uname, member.gname
                if member.isdir():
                    copy.type = tarfile.DIRTYPE
                    target.addfile(copy)
                    manifest["dirs"].append(name)
                elif member.issym():
                    copy.type, copy.linkname = tarfile.SYMTYPE, member.linkname
                    target.addfile(copy)
                    manifest["links"][name] = member.linkname
                elif member.isfile() or member.islnk():
                    data = source.extractfile(member)
                    body = data.read() if data is not None else b""
                    copy.type, copy.size = tarfile.REGTYPE, len(body)
                    target.addfile(copy, io.BytesIO(body))
                    manifest["files"][name] = {"size": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                                               "mode": oct(member.mode & 0o7777)}
                    manifest["bytes"] += len(body)
                else:
                    raise CopyError(f"the volume holds {name!r}, a {'FIFO' if member.isfifo() else 'device or special'} "
                                    "file, which cannot be copied as data", reason="bad_archive")
        except tarfile.TarError as exc:
            raise CopyError(f"the volume's archive is damaged: {exc}", reason="bad_archive") from None
    return out.getvalue(), manifest


_SUM = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def parse_sums(text):
    """``{path: sha256}`` of ``sha256sum`` lines (paths as ``find . -type f`` prints them, ``./`` dropped)."""
    out = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        match = _SUM.match(line)
        if not match:
            raise CopyError(f"sha256sum printed a line that is not a checksum: {line[:120]!r}", reason="bad_sums")
        path = match.group(2)
        out[path[2:] if path.startswith("./") else path] = match.group(1)
    return out


def compare(manifest, sums):
    """The differences between the manifest's files and the copy's checksums (empty when they match)."""
    problems = []
    files = manifest["files"]
    for path in sorted(set(files) - set(sums)):
        problems.append(f"{path}: missing in the copy")
    for path in sorted(set(sums) - set(files)):
        problems.append(f"{path}: in the copy but not in the source")
    for path in sorted(set(files) & set(sums)):
        if files[path]["sha256"] != sums[path]:
            problems.append(f"{path}: sha256 differs")
    return problems


def sums_of(manifest):
    return {path: entry["sha256"] for path, entry in manifest["files"].items()}


def write_snapshot(directory, service, path, data, now=time.gmtime):
    """Keep ``data`` (a normalised archive) as ``<directory>/<service>-<path>-<UTC time>.tar``, 0600 in a 0700
    directory; returns {path, sha256, bytes}."""
    directory = os.path.expanduser(directory)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.strip("/")) or "root"
    name = f"{service}-{slug}-{time.strftime('%Y%m%dT%H%M%SZ', now())}.tar"
    full = os.path.join(directory, name)
    fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(full, 0o600)
    return {"path": full, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def exit_code(status):
    """The exit code in an exec stream's status (channel 3: a ``Status`` object); None when there is none."""
    if not status:
        return None
    try:
        data = json.loads(status)
    except ValueError:
        return None
    if data.get("status") == "Success":
        return 0
    for cause in (data.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                return None
    return None


def restore_script(path):
    """The shell command green's container runs to replace the claim's content with the archive on stdin, then
    print every file's sha256. A failing step still reads all of stdin before it exits: a command that ends with
    its stdin unread can leave the API server's exec stream open."""
    quoted = shlex.quote(path)
    return (f"cd {quoted} || {{ cat >/dev/null; exit 2; }}; "
            "find . -mindepth 1 -maxdepth 1 -exec rm -rf -- {} + || { cat >/dev/null; exit 3; }; "
            f"tar -x -f - -C {quoted} || {{ rc=$?; cat >/dev/null; exit $rc; }}; "
            "find . -type f -exec sha256sum -- {} +")


def archive_script(path):
    """The shell command that writes the claim's content to stdout as a tar (relative names)."""
    return f"set -e; tar -c -f - -C {shlex.quote(path)} ."


# ------------------------------------------------------------------------------------------------ the two sides
# Each side reads a volume as (normalised archive, manifest) and replaces a volume's content with an archive,
# returning the copy's checksums ({path: sha256}). Unit tests give the runner doubles with the same methods.


class SwarmSide:
    """The Swarm service's named volumes, through the Docker Engine that runs its task: the archive API reads the
    volume at its mount path in the task's container (what ``docker cp`` does); a write empties it with an exec,
    puts the archive and reads the result back for its checksums."""

    def __init__(self, docker, service_name):
        self.docker, self.service_name = docker, service_name
        self._container = None

    def container(self):
        if self._container is None:
            found = self.docker.containers(filters={"label": f"com.docker.swarm.service.name={self.service_name}",
                                                    "status": "running"})
            if len(found) != 1:
                where = getattr(self.docker, "base_url", "the Docker Engine")
                raise CopyError(
                    f"the Swarm service {self.service_name} has {len(found)} running task(s) on {where}: a volume moves "
                    "from exactly one running task; set volume_docker_host to the Docker API of the node that runs "
                    "it (a service with a named volume runs one replica)", reason="no_swarm_task")
            self._container = found[0]["Id"]
        return self._container

    def read(self, move):
        try:
            chunks, dummy = self.docker.get_archive(self.container(), move["path"])
            stream = io.BytesIO(b"".join(chunks))
        except CopyError:
            raise
        except Exception as exc:  # pylint: disable=broad-except  # the SDK raises its own and requests' errors
            raise CopyError(f"could not read {move['path']} of the Swarm service {self.service_name}: {exc}",
                            reason="swarm_read_failed") from None
        return normalise(stream, posixpath.basename(move["path"]))

    def _exec(self, command):
        exec_id = self.docker.exec_create(self.container(), ["sh", "-c", command], stdout=True, stderr=True)["Id"]
        output = self.docker.exec_start(exec_id)
        code = self.docker.exec_inspect(exec_id).get("ExitCode")
        return code, output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)

    def write(self, move, data):
        try:
            code, output = self._exec(f"set -e; cd {shlex.quote(move['path'])}; "
                                      "find . -mindepth 1 -maxdepth 1 -exec rm -rf -- {} +")
            if code != 0:
                raise CopyError(f"could not empty {move['path']} in the Swarm task of {self.service_name} (exit "
                                f"{code}): {output[-300:]}", reason="swarm_write_failed")
            if not self.docker.put_archive(self.container(), move["path"], data):
                raise CopyError(f"the Docker Engine refused the archive for {move['path']} of {self.service_name}",
                                reason="swarm_write_failed")
        except CopyError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise CopyError(f"could not write {move['path']} of the Swarm service {self.service_name}: {exc}",
                            reason="swarm_write_failed") from None
        dummy, manifest = self.read(move)
        return sums_of(manifest)

    def restart(self, manager, timeout, clock=time.monotonic, sleep=time.sleep):
        """Replace the service's task (a forced update through ``manager``, the Swarm manager's engine, as
        ``docker service update --force``): the new task mounts the same volume and opens the copied files."""
        from ansible_collections.sophia_ai.platform.plugins.module_utils import _swarm_service  # pylint: disable=import-outside-toplevel
        service = _swarm_service.get_service(manager, self.service_name)
        spec = copy.deepcopy(service["Spec"])
        template = spec.setdefault("TaskTemplate", {})
        template["ForceUpdate"] = int(template.get("ForceUpdate") or 0) + 1
        _swarm_service.update_service(manager, service, spec)
        out = _swarm_service.wait_rollout(manager, self.service_name, timeout, previous_update=service.get("UpdateStatus"),
                                          poll=0.5, clock=clock, sleep=sleep)
        self._container = None
        if out["state"] != "converged":
            raise CopyError(f"the Swarm service {self.service_name} did not come back on the copied data: "
                            f"{out['detail']}", reason="swarm_restart_failed")


class K3sSide:
    """Green's claims, through the Kubernetes API's exec (what ``kubectl cp`` does): ``tar`` and ``sha256sum`` run in
    green's container, the archive goes over stdin/stdout. Closing stdin needs the v5 channel protocol of the
    API server's WebSocket exec (Kubernetes 1.30 and later, every K3s this collection installs)."""

    def __init__(self, api_client, namespace, pod, timeout=300.0):
        self.api_client, self.namespace, self.pod, self.timeout = api_client, namespace, pod, timeout

    def _exec(self, container, script, stdin=None):
        from kubernetes import client as k8s_client  # pylint: disable=import-outside-toplevel
        from kubernetes import stream as k8s_stream  # pylint: disable=import-outside-toplevel
        core = k8s_client.CoreV1Api(self.api_client)
        try:
            ws = k8s_stream.stream(core.connect_get_namespaced_pod_exec, self.pod, self.namespace,
                                   container=container, command=["sh", "-c", script], stdin=stdin is not None,
                                   stdout=True, stderr=True, tty=False, _preload_content=False, binary=True)
        except Exception as exc:  # pylint: disable=broad-except  # ApiException, websocket errors
            raise CopyError(f"could not exec in pod {self.namespace}/{self.pod} ({container}): {exc}",
                            reason="exec_failed") from None
        out, err, status = [], [], []
        deadline = time.monotonic() + self.timeout

        def pump(timeout):
            # the command's status (channel 3) comes when it ends, also while the API server keeps the stream
            # open (a command that ends before reading all of its stdin)
            if ws.is_open():
                ws.update(timeout=timeout)
            out.append(ws.read_channel(1, timeout=0) or b"")
            err.append(ws.read_channel(2, timeout=0) or b"")
            status.append(ws.read_channel(3, timeout=0) or b"")
            return b"".join(status)

        try:
            if stdin is not None:
                if getattr(ws, "subprotocol", None) != "v5.channel.k8s.io":
                    raise CopyError(f"the Kubernetes API server answered exec with {ws.subprotocol!r}, not "
                                    "v5.channel.k8s.io: it cannot close a command's stdin (Kubernetes 1.30 or later "
                                    "is needed to copy a volume)", reason="exec_failed")
                try:
                    for offset in range(0, len(stdin), CHUNK):
                        if pump(0):
                            break  # the command ended before it read all of its stdin
                        ws.write_stdin(stdin[offset:offset + CHUNK])
                    else:
                        ws.close_channel(0)
                except Exception:  # pylint: disable=broad-except  # the stream broke: its status says why, if any
                    pass
            while not pump(0) and ws.is_open():
                if time.monotonic() > deadline:
                    raise CopyError(f"{script[:60]!r} in pod {self.namespace}/{self.pod} did not end in "
                                    f"{self.timeout:.0f} s", reason="exec_timeout")
                pump(1)
        finally:
            ws.close()
        code = exit_code(b"".join(status))
        return code, b"".join(out), b"".join(err).decode("utf-8", "replace")

    def read(self, move):
        code, data, err = self._exec(move["container"], archive_script(move["path"]))
        if code != 0:
            raise CopyError(f"tar -c of {move['path']} in pod {self.namespace}/{self.pod} failed (exit {code}): "
                            f"{err[-300:]}", reason="k3s_read_failed")
        return normalise(io.BytesIO(data))

    def write(self, move, data):
        code, out, err = self._exec(move["container"], restore_script(move["path"]), stdin=data)
        if code != 0:
            raise CopyError(f"restoring {move['path']} (claim {move['claim']}) in pod {self.namespace}/{self.pod} "
                            f"failed (exit {code}): {err[-300:]}; green's container needs sh, find, tar and "
                            "sha256sum", reason="k3s_write_failed")
        return parse_sums(out.decode("utf-8", "replace"))
