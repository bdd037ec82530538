"""A libvirtd of the test's own, listening for TLS on 127.0.0.1, with a CA and certificates made at test time.

The system libvirtd (scripts/start-libvirtd) is shared by everyone on the machine and cannot be stopped
or frozen mid-test, and a second libvirtd with the QEMU driver refuses to start beside it (the driver
takes a lock in /run/libvirt/qemu). So this one runs in a mount namespace of its own (`unshare -m`):
private /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt (tmpfs), its own
/etc/libvirt (libvirtd.conf with listen_tls on a free port, qemu.conf as start-libvirtd writes it, QEMU's
output to files so no virtlogd is needed). Same network namespace: clients reach it at
qemu+tls://127.0.0.1:<port>/system?pkipath=<client pki dir>. Root only.
"""

import datetime
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LIBVIRTD = shutil.which("libvirtd") or "/usr/sbin/libvirtd"
PRIVATE_DIRS = ("/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt")


def why_not_available() -> str | None:
    """None when this machine can run a private libvirtd, else the reason."""
    if os.geteuid() != 0:
        return "a private libvirtd (own mount namespace, QEMU driver) needs root"
    if not Path(LIBVIRTD).exists():
        return "libvirtd is not installed (scripts/ensure-system-packages --ci installs it)"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"cannot make a mount namespace here: {probe.stderr.strip()}"
    return None


class Pki:
    """A CA and, signed by it, a server certificate for 127.0.0.1 and a client certificate."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server_dir = directory / "server"
        self.client_dir = directory / "client"  # the layout libvirt's pkipath= expects
        now = datetime.datetime.now(datetime.UTC)
        self._validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gpuadmin test CA")])
        ca = (
            self._builder(ca_name, ca_name, ca_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file = directory / "cacert.pem"
        _write(self.ca_file, ca.public_bytes(serialization.Encoding.PEM))
        self.server_cert, self.server_key = self._leaf(
            ca, ca_key, "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, self.server_dir, "server"
        )
        self.client_cert, self.client_key = self._leaf(
            ca, ca_key, "gpuadmin-control-plane", ExtendedKeyUsageOID.CLIENT_AUTH, self.client_dir, "client"
        )
        _write(self.client_dir / "cacert.pem", self.ca_file.read_bytes())

    def _builder(self, subject: x509.Name, issuer: x509.Name, key) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._validity[0])
            .not_valid_after(self._validity[1])
        )

    def _leaf(self, ca, ca_key, common_name: str, purpose, directory: Path, role: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = (
            self._builder(subject, ca.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        )
        if role == "server":
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        cert_file, key_file = directory / f"{role}cert.pem", directory / f"{role}key.pem"
        _write(cert_file, cert.public_bytes(serialization.Encoding.PEM))
        key_bytes = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write(key_file, key_bytes, mode=0o600)
        return cert_file, key_file


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=not cert_sign,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


class TlsLibvirtd:
    """The private libvirtd: start() it, freeze() it (a host that stops answering), stop() it."""

    def __init__(self, *, port: int) -> None:
        self.port = port
        self.directory = Path(tempfile.mkdtemp(prefix="gpuadmin-tls-"))
        self.pki = Pki(self.directory / "pki")
        self.etc = self.directory / "etc"
        self.pid_file = self.directory / "libvirtd.pid"
        self.log_file = self.directory / "libvirtd.log"
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"qemu+tls://127.0.0.1:{self.port}/system?pkipath={self.pki.client_dir}"

    @property
    def pid(self) -> int:
        return int(self.pid_file.read_text())

    def start(self) -> "TlsLibvirtd":
        self._write_config()
        mounts = " && ".join(f"mkdir -p {d} && mount -t tmpfs tmpfs {d}" for d in PRIVATE_DIRS)
        script = (
            f"{mounts} && mkdir -p /etc/libvirt && mount --bind {self.etc} /etc/libvirt && "
            f"exec {LIBVIRTD} --listen --config {self.etc}/libvirtd.conf --pid-file {self.pid_file}"
        )
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "stderr.log", "w"),  # noqa: SIM115 - the process keeps it
            start_new_session=True,
        )
        return self

    def wait_ready(self, *, timeout: float = 60) -> None:
        import libvirt

        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the private libvirtd exited: {self.diagnostics()}")
            try:
                libvirt.open(self.uri).close()
                return
            except libvirt.libvirtError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the private libvirtd did not answer: {exc}; {self.diagnostics()}"
                    ) from exc
            time.sleep(0.3)

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.pid_file.exists():
            try:
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def diagnostics(self) -> str:
        parts = []
        for log in (self.directory / "stderr.log", self.log_file):
            if log.exists():
                parts.append(f"{log.name}: {log.read_text()[-2000:]}")
        return " | ".join(parts)

    def _write_config(self) -> None:
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "libvirtd.conf").write_text(
            f'listen_tls = 1\nlisten_tcp = 0\nlisten_addr = "127.0.0.1"\ntls_port = "{self.port}"\n'
            f'ca_file = "{self.pki.ca_file}"\ncert_file = "{self.pki.server_cert}"\n'
            f'key_file = "{self.pki.server_key}"\n'
            'auth_tls = "none"\ntls_no_verify_certificate = 0\n'
            'tls_allowed_dn_list = ["CN=gpuadmin-control-plane"]\n'
            f'unix_sock_dir = "{self.directory}"\nunix_sock_group = "root"\nunix_sock_rw_perms = "0700"\n'
            f'log_outputs = "3:file:{self.log_file}"\n'
        )
        (self.etc / "qemu.conf").write_text(
            'user = "root"\ngroup = "root"\ndynamic_ownership = 0\nsecurity_driver = "none"\n'
            'cgroup_controllers = [ ]\nremember_owner = 0\nstdio_handler = "file"\n'
        )
