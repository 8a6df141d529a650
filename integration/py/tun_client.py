"""The kernel TCP client of the smoltcp echo behind a TUN device
(integration/tests/bridge.rs): connects to 127.20.0.2:7 (retrying while
the server starts), sends MESSAGES messages of SIZE bytes one at a time,
each as echo-bench's smoltcp echo generates them, and checks every echoed
byte.

usage: tun_client.py SIZE MESSAGES"""
import socket
import struct
import sys
import time

M = (1 << 64) - 1


def mix(x):
    z = (x + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def message(i, size):
    words = (size + 7) // 8
    return b"".join(struct.pack("<Q", mix((i << 40) | k)) for k in range(words))[:size]


def main():
    size, messages = int(sys.argv[1]), int(sys.argv[2])
    deadline = time.monotonic() + 10
    while True:
        try:
            s = socket.create_connection(("127.20.0.2", 7), timeout=30)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    bad = 0
    for i in range(messages):
        msg = message(i, size)
        s.sendall(msg)
        got = bytearray()
        while len(got) < size:
            chunk = s.recv(size - len(got))
            if not chunk:
                sys.exit(f"tun_client: connection closed after {len(got)} bytes of message {i}")
            got += chunk
        bad += bytes(got) != msg
    s.close()
    print(f"tun_client: {messages} messages of {size} bytes, {bad} differed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
