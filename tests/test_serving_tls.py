"""`--ssl_config_file`: gRPC over TLS, and mutual TLS with `client_verify`, with certificates made here.

openssl makes a CA, a server certificate for 127.0.0.1 and a client certificate, plus a rogue CA with
its own client. Plaintext, a client trusting another CA, and (with client_verify) a client without a
certificate or with the rogue one are all refused; the right client gets its prediction.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from serving_fixtures.models import expected_probabilities, serve_classifier

from course_lib.serving import GrpcClient, ServingError, tls_credentials

X = np.array([[1, 2, 3, 4]], np.float32)

pytestmark = pytest.mark.slow  # model servers as subprocesses


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=folder)  # fmt: skip


def make_signed(folder: Path, name: str, ca: str, san: str | None = None) -> None:
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=folder)  # fmt: skip
    extensions = folder / f"{name}.ext"
    extensions.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "2", "-out", f"{name}.pem", "-extfile", extensions.name, cwd=folder)  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("certs")
    make_ca(folder, "ca")
    make_ca(folder, "rogue-ca")
    make_signed(folder, "server", "ca", san="IP:127.0.0.1,DNS:localhost")
    make_signed(folder, "client", "ca")
    make_signed(folder, "rogue-client", "rogue-ca")
    return folder


def ssl_config(certs: Path, client_verify: bool) -> Path:
    def pem(name: str) -> str:
        """A PEM file as a one-line text-protobuf string (newlines escaped, as TF Serving's docs write them)."""
        return (certs / name).read_text().replace("\n", "\\n")

    path = certs / f"ssl-{client_verify}.config"
    path.write_text(
        f'server_key: "{pem("server.key")}"\nserver_cert: "{pem("server.pem")}"\n'
        f'custom_ca: "{pem("ca.pem")}"\nclient_verify: {str(client_verify).lower()}\n'
    )
    return path


def predict(target: str, credentials=None):
    with GrpcClient(target, "clf", timeout=5, credentials=credentials) as client:
        return client.predict({"x": X})["probs"]


def test_tls_serves_the_right_ca_and_refuses_plaintext_and_other_cas(certs, tmp_path):
    with serve_classifier(tmp_path, f"--ssl_config_file={ssl_config(certs, client_verify=False)}") as server:
        np.testing.assert_allclose(
            predict(server.grpc_target, tls_credentials(certs / "ca.pem")), expected_probabilities(X, 1.0), rtol=1e-5
        )
        with pytest.raises(ServingError):
            predict(server.grpc_target)  # plaintext to a TLS port
        with pytest.raises(ServingError):
            predict(server.grpc_target, tls_credentials(certs / "rogue-ca.pem"))
        assert "(TLS)" in server.log_path.read_text()


def test_client_verify_requires_a_client_certificate_signed_by_the_custom_ca(certs, tmp_path):
    with serve_classifier(tmp_path, f"--ssl_config_file={ssl_config(certs, client_verify=True)}") as server:
        with pytest.raises(ServingError):
            predict(server.grpc_target, tls_credentials(certs / "ca.pem"))  # no client certificate
        with pytest.raises(ServingError):
            predict(server.grpc_target, tls_credentials(certs / "ca.pem", certs / "rogue-client.pem",
                                                        certs / "rogue-client.key"))  # fmt: skip
        good = tls_credentials(certs / "ca.pem", certs / "client.pem", certs / "client.key")
        np.testing.assert_allclose(predict(server.grpc_target, good), expected_probabilities(X, 1.0), rtol=1e-5)
        assert "TLS with client certificates" in server.log_path.read_text()
