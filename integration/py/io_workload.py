"""Large file and socket IO for the zio differential test.

Writes a file in large chunks, reads it back with os.read and readinto,
streams data over a loopback TCP connection (sendall / recv_into) and prints
a digest of everything received. Output must be identical with and without
zio. usage: io_workload.py SCRATCH_DIR
"""
import hashlib
import os
import socket
import sys
import threading

MIB = 1 << 20


def data(n, seed):
    # Deterministic and cheap: a repeated digest chain.
    out = bytearray()
    h = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h * 64
    return bytes(out[:n])


def file_io(d):
    path = os.path.join(d, "py_io.dat")
    blob = data(16 * MIB, 1)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    for off in range(0, len(blob), 512 * 1024):
        os.write(fd, blob[off:off + 512 * 1024])
    os.lseek(fd, 0, os.SEEK_SET)
    got = bytearray()
    while True:
        chunk = os.read(fd, 1 * MIB)
        if not chunk:
            break
        got += chunk
    os.close(fd)
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(4 * MIB)
        again = bytearray()
        while True:
            n = f.readinto(buf)
            if not n:
                break
            again += buf[:n]
    os.unlink(path)
    assert got == blob and again == blob
    print("file", hashlib.sha256(got).hexdigest())


def socket_io():
    blob = data(8 * MIB, 2)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def sender():
        conn, _ = srv.accept()
        conn.sendall(blob)
        conn.close()

    t = threading.Thread(target=sender)
    t.start()
    c = socket.create_connection(("127.0.0.1", port))
    buf = bytearray(256 * 1024)
    got = bytearray()
    while True:
        n = c.recv_into(buf)
        if not n:
            break
        got += buf[:n]
    c.close()
    t.join()
    srv.close()
    assert got == blob
    print("socket", hashlib.sha256(got).hexdigest())


if __name__ == "__main__":
    file_io(sys.argv[1])
    socket_io()
    print("done")
