"""Azurite (the Azure Storage emulator, `npm install --prefix tests/servers
azurite@3.35.0`) for the end-to-end tests: its blob service on a free port of
127.0.0.1, in memory. Prints the port once it accepts connections; exits (and
stops Azurite) when its standard input closes. Also a client for the tests:

    python tests/servers/azurite.py put PORT CONTAINER NAME FILE   (creates the container)
    python tests/servers/azurite.py get PORT CONTAINER NAME FILE

(azure-storage-blob, which tests/servers/install.sh installs).
"""

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent


def client(port):
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


def main():
    if sys.argv[1:2] == ["put"]:
        port, container, name, path = sys.argv[2:6]
        c = client(port).get_container_client(container)
        if not c.exists():
            c.create_container()
        with open(path, "rb") as f:
            c.upload_blob(name, f, overwrite=True)
        return
    if sys.argv[1:2] == ["get"]:
        port, container, name, path = sys.argv[2:6]
        data = client(port).get_blob_client(container, name).download_blob().readall()
        Path(path).write_bytes(data)
        return
    binary = HERE / "node_modules/.bin/azurite-blob"
    if not binary.exists():
        sys.exit("Azurite is not installed: run tests/servers/install.sh")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    azurite = subprocess.Popen(
        [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
         "--skipApiVersionCheck", "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            threading.Event().wait(0.05)
    print(port, flush=True)
    sys.stdin.read()
    azurite.kill()
    os._exit(0)


if __name__ == "__main__":
    main()
