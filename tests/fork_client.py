"""The client of tests/fork_server.py: a script run forked from the server (or from one of its zygotes), followed as
subprocess.Popen follows a child (pid, poll, wait, returncode). The run is not this process's child, so its end and
CPU time come over the socket."""

import json
import select
import socket
import subprocess

CPU_S = [0.0]  # CPU seconds of the forked runs this process has seen end


class ForkedProcess:
    def __init__(self, server: str, argv: list[str], env: dict, cwd=None, fds: tuple[int, int, int] = (0, 1, 2),
                 session: bool = False):
        """Starts `python *argv` with `fds` as its stdin, stdout and stderr; `session`: in a session of its own, as
        Popen(start_new_session=True) starts it (its pid is its process group)."""
        self.args, self.returncode = argv, None
        request = {"argv": argv, "env": env, "cwd": str(cwd) if cwd else None, "session": session}
        answer = self.send(server, request, fds)
        if "zygote" in answer:
            try:
                answer = self.send(answer["zygote"], request, fds)
            except OSError:  # that zygote is gone (retired, or refused what its imports did)
                self.connection.close()
                answer = self.send(server, request | {"no_zygote": True}, fds)
        self.pid = answer["pid"]

    def send(self, server: str, request: dict, fds) -> dict:
        self.connection, self.unread = socket.socket(socket.AF_UNIX), b""
        self.connection.connect(server)
        socket.send_fds(self.connection, [json.dumps(request).encode() + b"\n"], list(fds))
        return self.answer(block=True)

    def answer(self, block: bool) -> dict | None:
        while b"\n" not in self.unread:
            if not block and not select.select([self.connection], [], [], 0)[0]:
                return None
            received = self.connection.recv(4096)
            if not received:
                raise ConnectionError(f"the fork server ended during {self.args}")
            self.unread += received
        line, _, self.unread = self.unread.partition(b"\n")
        return json.loads(line)

    def ended(self, answer: dict | None):
        if answer is not None:
            self.returncode = answer["status"]
            CPU_S[0] += answer["cpu_s"]
            self.connection.close()

    def poll(self) -> int | None:
        if self.returncode is None:
            self.ended(self.answer(block=False))
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.connection.settimeout(timeout)
            try:
                self.ended(self.answer(block=True))
            except TimeoutError:
                raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode
