"""A real single-node Apache Kafka broker (KRaft mode) as a local process.

The broker is the ``kafka.Kafka`` main class of ``org.apache.kafka:kafka_2.13``,
resolved once with Maven from Maven Central into a cache directory. Storage is
formatted with ``kafka.tools.StorageTool format --standalone`` before the first
start; ports are free loopback ports.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from loom.errors import ServiceError
from loom.logging import get_logger
from loom.services._process import free_port, stop_process, wait_until

__all__ = ["KAFKA_VERSION", "KafkaServer", "cache_dir", "resolve_kafka"]

KAFKA_VERSION = os.environ.get("LOOM_KAFKA_VERSION", "4.1.1")
LOG4J_VERSION = "2.24.3"
_HERE = Path(__file__).resolve().parent
log = get_logger(__name__)


def cache_dir() -> Path:
    """Where downloaded runtimes live: ``$LOOM_CACHE_DIR`` or ``~/.cache/loom``."""
    root = os.environ.get("LOOM_CACHE_DIR") or Path.home() / ".cache" / "loom"
    return Path(root)


def _java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        raise ServiceError(f"cannot tell the Java version from `{java} -version`: {out.stderr!r}")
    major = int(match[1])
    return int(match[2] or 0) if major == 1 else major


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise ServiceError(
            "Kafka needs Java 17 or newer: install it (apt-get install openjdk-17-jre)"
        )
    if _java_major(java) < 17:
        raise ServiceError(f"Kafka {KAFKA_VERSION} needs Java 17 or newer; {java} is older")
    return java


def resolve_kafka(version: str = KAFKA_VERSION) -> Path:
    """The directory of the broker's jars, resolving them with Maven on first use."""
    libs = cache_dir() / "kafka" / version / "libs"
    if (libs / f"kafka_2.13-{version}.jar").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError("resolving Kafka needs Maven: install it (apt-get install maven)")
    work = libs.parent / "resolve"
    work.mkdir(parents=True, exist_ok=True)
    pom = (_HERE / "kafka-runtime.pom.xml").read_text()
    pom = pom.replace("@KAFKA_VERSION@", version).replace("@LOG4J_VERSION@", LOG4J_VERSION)
    (work / "pom.xml").write_text(pom)
    staging = libs.parent / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    log.info("kafka.resolve", version=version, into=str(libs))
    done = subprocess.run(
        [mvn, "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime",
         f"-DoutputDirectory={staging}"],
        cwd=work, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ServiceError(
            f"Maven could not resolve org.apache.kafka:kafka_2.13:{version}:\n"
            f"{(done.stdout + done.stderr)[-3000:]}"
        )
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


def _cluster_id() -> str:
    """A random KRaft cluster id (22 URL-safe base64 characters). Never one that starts
    with '-': the storage tool would read it as an option (1 start in 64 failed so)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class KafkaServer:
    """One broker+controller in KRaft mode, data under ``data_dir``.

    ``start`` formats storage on first use, starts the JVM and waits until the broker
    answers a metadata request; ``stop`` shuts it down cleanly. The ports stay the
    same across stop/start, so clients can reconnect after a restart.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    heap: str = "512m"
    version: str = KAFKA_VERSION
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "kafka.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _properties(self) -> str:
        h, p, c = self.host, self.port, self.controller_port
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={h}:{c}",
            f"listeners=PLAINTEXT://{h}:{p},CONTROLLER://{h}:{c}",
            f"advertised.listeners=PLAINTEXT://{h}:{p}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.data_dir / 'logs'}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.retention.check.interval.ms=60000",
            "",
        ])  # fmt: skip

    def _java_cmd(self, libs: Path, java: str, *args: str) -> list[str]:
        return [
            java, f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={_HERE / 'log4j2.properties'}",
            f"-Dloom.kafka.log={self.log_file}",
            "-cp", f"{libs}/*", *args,
        ]  # fmt: skip

    def start(self, timeout: float = 90.0) -> KafkaServer:
        if self.running:
            return self
        java, libs = _java(), resolve_kafka(self.version)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.write_text(self._properties())
        if not (self.data_dir / "logs" / "meta.properties").exists():
            fmt = subprocess.run(
                self._java_cmd(libs, java, "kafka.tools.StorageTool", "format", "--standalone",
                               "-t", _cluster_id(), "-c", str(config)),
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if fmt.returncode != 0:
                raise ServiceError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        out = (self.data_dir / "kafka.stdout").open("ab")
        self._process = subprocess.Popen(
            self._java_cmd(libs, java, "kafka.Kafka", str(config)),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        out.close()
        wait_until(
            f"Kafka {self.version} on {self.bootstrap_servers}",
            self._answers,
            timeout=timeout,
            process=self._process,
            log=self.log_file,
            interval=0.5,
        )
        log.info("kafka.started", bootstrap_servers=self.bootstrap_servers, data=str(self.data_dir))
        return self

    def _answers(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        try:
            brokers = admin.list_topics(timeout=2).brokers
        except Exception:  # noqa: BLE001 - not up yet; any client error means "try again"
            return False
        return bool(brokers)

    def stop(self, timeout: float = 60.0) -> None:
        """Shut the broker down cleanly (SIGTERM), killing it after ``timeout``."""
        if self._process is None:
            return
        stop_process(self._process, timeout=timeout)
        log.info("kafka.stopped", code=self._process.returncode)
        self._process = None

    def kill(self) -> None:
        """Stop the broker abruptly (SIGKILL), as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None

    def __enter__(self) -> KafkaServer:
        return self.start()

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
