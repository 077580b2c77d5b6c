# Copyright (c) 2026 sophia_ai.platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_volume_copy on real archives (fixtures/volumes/README.md): the Docker Engine's archive of a volume and GNU tar's
``tar -c`` of the same content normalise to the same manifest, which matches ``sha256sum`` of the files."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from ansible_collections.sophia_ai.platform.plugins.module_utils import _volume_copy as vc
from ansible_collections.sophia_ai.platform.plugins.module_utils._errors import InputError

FIX = Path(__file__).parent / "fixtures" / "volumes"

SWARM = {"Spec": {"Name": "sophia_mcp-ai-memory", "TaskTemplate": {"ContainerSpec": {"Mounts": [
    {"Type": "volume", "Source": "sophia_ai-memory-data", "Target": "/data"},
    {"Type": "bind", "Source": "/etc/sophia", "Target": "/etc/sophia", "ReadOnly": True}]}}}}
TEMPLATE = {"spec": {
    "containers": [{"name": "mcp-ai-memory", "volumeMounts": [{"name": "ai-memory-data", "mountPath": "/data/"}]}],
    "volumes": [{"name": "ai-memory-data", "persistentVolumeClaim": {"claimName": "ai-memory-data"}}]}}


def manifest_of(name, prefix=""):
    with (FIX / name).open("rb") as handle:
        return vc.normalise(handle, prefix)


def test_plan_moves_pairs_the_swarm_volume_with_the_claim():
    assert vc.plan_moves(["/data/"], SWARM, TEMPLATE, "mcp-ai-memory") == [
        {"path": "/data", "volume": "sophia_ai-memory-data", "read_only": False, "container": "mcp-ai-memory",
         "claim": "ai-memory-data"}]


@pytest.mark.parametrize("paths, words", [
    (["data"], r"volumes\[0\] must be the absolute path"),
    (["/"], r"volumes\[0\] must be the absolute path"),
    (["/data", "/data/"], r"volumes\[1\]: /data is listed twice"),
    (["/srv"], r"mounts nothing at /srv \(its mounts: /data \(volume\), /etc/sophia \(bind\)\)"),
    (["/etc/sophia"], "is a bind mount of the Swarm service, not a named volume"),
])
def test_plan_moves_refuses_what_cannot_move(paths, words):
    with pytest.raises(InputError, match=words) as info:
        vc.plan_moves(paths, SWARM, TEMPLATE, "mcp-ai-memory")
    assert info.value.details["key"] == "volumes"


def test_unmoved_named_volumes_are_the_named_volume_mounts_left_out():
    assert vc.unmoved_named_volumes(SWARM, []) == ["/data"]
    assert vc.unmoved_named_volumes(SWARM, ["/data/"]) == []  # the bind mount is the host's, never moved
    assert vc.unmoved_named_volumes({"Spec": {}}, []) == []


def test_plan_moves_needs_a_claim_in_green():
    template = {"spec": {"containers": [{"name": "c", "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]}],
                         "volumes": [{"name": "scratch", "emptyDir": {}}]}}
    with pytest.raises(InputError, match="no container of green .* mounts a PersistentVolumeClaim at /data"):
        vc.plan_moves(["/data"], SWARM, template, "mcp-ai-memory")


def test_docker_archive_and_gnu_tar_give_the_same_manifest():
    data, docker = manifest_of("docker-archive-data.tar", "data")
    dummy, gnu = manifest_of("gnu-tar-c-data.tar")
    assert docker == gnu
    assert sorted(docker["files"]) == ["a.txt", "empty", "memories/team/release.json"]
    assert docker["files"]["a.txt"]["mode"] == "0o640" and docker["bytes"] == 32
    assert docker["links"] == {"latest": "a.txt"} and sorted(docker["dirs"]) == ["memories", "memories/team"]
    with tarfile.open(fileobj=io.BytesIO(data)) as out:
        names = out.getnames()
        assert sorted(names) == ["a.txt", "empty", "latest", "memories", "memories/team",
                                 "memories/team/release.json"]
        assert out.getmember("a.txt").uid == 10001
        assert out.extractfile("memories/team/release.json").read() == b'{"value": "ship on friday"}'


def test_the_manifest_matches_sha256sum_of_the_files():
    dummy, manifest = manifest_of("docker-archive-data.tar", "data")
    sums = vc.parse_sums((FIX / "sha256sum.txt").read_text())
    assert vc.compare(manifest, sums) == [] and vc.sums_of(manifest) == sums


def test_compare_names_every_difference():
    dummy, manifest = manifest_of("gnu-tar-c-data.tar")
    sums = vc.sums_of(manifest)
    sums.pop("empty")
    sums["a.txt"] = "0" * 64
    sums["stray"] = "1" * 64
    assert vc.compare(manifest, sums) == ["empty: missing in the copy", "stray: in the copy but not in the source",
                                          "a.txt: sha256 differs"]


def test_a_member_outside_the_volume_is_refused():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as out:
        info = tarfile.TarInfo("data/../../etc/passwd")
        out.addfile(info, io.BytesIO(b""))
    buf.seek(0)
    with pytest.raises(vc.CopyError, match="member outside the volume") as error:
        vc.normalise(buf, "data")
    assert error.value.details["reason"] == "bad_archive"


def test_a_device_file_is_refused():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as out:
        info = tarfile.TarInfo("./null")
        info.type = tarfile.CHRTYPE
        out.addfile(info)
    buf.seek(0)
    with pytest.raises(vc.CopyError, match="'null', a device or special file"):
        vc.normalise(buf)


def test_not_a_tar_is_refused():
    with pytest.raises(vc.CopyError, match="not a tar stream|damaged"):
        vc.normalise(io.BytesIO(b"HTTP/1.1 500 oops\r\n" * 40))


def test_parse_sums_refuses_other_lines():
    with pytest.raises(vc.CopyError, match="not a checksum"):
        vc.parse_sums("sha256sum: ./x: Permission denied\n")


def test_snapshots_are_private(tmp_path):
    data = (FIX / "gnu-tar-c-data.tar").read_bytes()
    kept = vc.write_snapshot(str(tmp_path / "snaps"), "mcp-ai-memory", "/data", data)
    path = Path(kept["path"])
    assert path.name.startswith("mcp-ai-memory-data-") and path.read_bytes() == data and kept["bytes"] == len(data)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_scripts_quote_the_path():
    assert vc.archive_script("/da'ta") == "set -e; tar -c -f - -C '/da'\"'\"'ta' ."
    assert vc.restore_script("/data").startswith("cd /data || { cat >/dev/null; exit 2; }; find . -mindepth 1")


@pytest.mark.parametrize("status, code", [
    # the exec stream's status channel as the lab's API server (Kubernetes 1.34) sent it
    (b'{"metadata":{},"status":"Success"}', 0),
    (b'{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: command terminated '
     b'with exit code 2","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"2"}]}}', 2),
    (b"", None),
    (b"not json", None),
])
def test_exit_code_of_an_exec_status(status, code):
    assert vc.exit_code(status) == code
