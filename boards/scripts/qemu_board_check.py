#!/usr/bin/env python3
"""Host-side checks of the lm3s6965 board firmware under QEMU.

Each check starts QEMU with UART0 wired to a unix socket that this script
listens on *before* QEMU starts: QEMU connects as a client, so nothing the
firmware prints at boot is lost (with `-serial pty` or a server socket with
`wait=off`, output before the host connects is dropped). The QEMU monitor,
where used, is wired the same way on a second socket.

Checks (all run by default):
  echo      banner, then 64 KiB of random bytes (all 256 values, 0x00 and
            0x01 included) echoed back byte for byte; reports boot-to-banner
            time, echo throughput and the CPU QEMU burns while the firmware
            sleeps.
  slow-reader  the slow_echo example, which stalls 2 ms after every read:
            16 KiB still echo byte-exact although the receive ring fills
            (reception pauses and resumes; it must have paused at least once).
  reset     a machine reset from the QEMU monitor (what a gateway does to
            hard-reset an emulated board) gives a new banner with a new boot id.
  panic     the deadline_panic example: a 500 ms deadline sleep lasts at
            least 500 ms by the board clock, the panic message arrives as
            text, the board resets itself and comes back with a new boot id,
            three times in a row.
  survey    (only with --survey N) N fresh QEMU processes: how many distinct
            boot ids, and boot-to-banner times.

Prints one line per check and a closing `N passed, N failed` line; exits
non-zero if any check failed.
"""

import argparse
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BANNER = re.compile(rb"corral lm3s6965 boot id=([0-9a-f]{8})\r\n")
QEMU_TIMEOUT_S = 60  # hard limit on any one QEMU process
IO_TIMEOUT_S = 20  # limit on waiting for any one expected output

CLK_TCK = os.sysconf("SC_CLK_TCK")


def qemu_command(elf, uart_sock, monitor_sock=None):
    """The QEMU command line, inside `timeout` so a stuck QEMU always dies."""
    cmd = [
        "timeout", "--kill-after=5", str(QEMU_TIMEOUT_S),
        "qemu-system-arm",
        "-machine", "lm3s6965evb", "-cpu", "cortex-m3",
        "-display", "none",
        "-chardev", f"socket,id=uart0,path={uart_sock},server=off",
        "-serial", "chardev:uart0",
    ]
    if monitor_sock:
        cmd += ["-chardev", f"socket,id=mon0,path={monitor_sock},server=off",
                "-mon", "chardev=mon0,mode=readline"]
    else:
        cmd += ["-monitor", "none"]
    cmd += ["-kernel", elf]
    return cmd


class Qemu:
    """One QEMU process with UART0 (and optionally the monitor) connected."""

    def __init__(self, elf, workdir, monitor=False):
        self.uart_path = os.path.join(workdir, "uart0.sock")
        self.mon_path = os.path.join(workdir, "monitor.sock") if monitor else None
        listeners = {}
        for name, path in (("uart", self.uart_path), ("mon", self.mon_path)):
            if path is None:
                continue
            if os.path.exists(path):
                os.unlink(path)
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            lsock.bind(path)
            lsock.listen(1)
            lsock.settimeout(IO_TIMEOUT_S)
            listeners[name] = lsock
        # QEMU's own messages go to a file, not a pipe nobody reads.
        self.log_path = os.path.join(workdir, "qemu.log")
        self.uart = self.mon = None
        self.started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                qemu_command(elf, self.uart_path, self.mon_path),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            self.uart, _ = listeners["uart"].accept()
            self.uart.settimeout(IO_TIMEOUT_S)
            if monitor:
                self.mon, _ = listeners["mon"].accept()
                self.mon.settimeout(IO_TIMEOUT_S)
        except OSError as e:
            self.stop()
            raise AssertionError(
                f"QEMU did not connect to {self.uart_path} ({e}); its output: {self.log()!r}")
        finally:
            for lsock in listeners.values():
                lsock.close()
        self.rx = bytearray()

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def qemu_pid(self):
        """PID of qemu-system-arm (the child of `timeout`)."""
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            children = f.read().split()
        return int(children[0])

    def expect(self, pattern, timeout=IO_TIMEOUT_S):
        """Reads UART output until `pattern` (bytes regex) matches; returns the
        match and drops everything up to its end from the buffer."""
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.rx)
            if m:
                # Re-match on a copy so the match object survives the trim.
                text = bytes(self.rx[: m.end()])
                del self.rx[: m.end()]
                return pattern.search(text)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out waiting for {pattern.pattern!r}; got {bytes(self.rx[-200:])!r}")
            self.uart.settimeout(left)
            try:
                chunk = self.uart.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError(
                    f"UART closed while waiting for {pattern.pattern!r}; got "
                    f"{bytes(self.rx[-200:])!r}; QEMU said {self.log()!r}")
            self.rx += chunk

    def echo(self, payload):
        """Sends `payload` while reading the echo (both at once, or the
        firmware would block writing to a full socket while we block
        sending); asserts the echo is byte-exact. Returns the seconds taken."""
        sender_error = []

        def send():
            try:
                self.uart.sendall(payload)
            except OSError as e:  # reported below
                sender_error.append(e)

        start = time.monotonic()
        sender = threading.Thread(target=send)
        sender.start()
        echoed = bytearray(self.rx)  # anything already read past the banner
        self.rx.clear()
        deadline = start + IO_TIMEOUT_S
        while len(echoed) < len(payload) and time.monotonic() < deadline:
            self.uart.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.uart.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            echoed += chunk
        elapsed = time.monotonic() - start
        sender.join(timeout=5)
        assert not sender_error, f"sending failed: {sender_error[0]}"
        # Anything beyond the payload is the firmware's next output.
        self.rx += echoed[len(payload):]
        echoed = echoed[: len(payload)]
        assert len(echoed) == len(payload), f"echoed {len(echoed)} of {len(payload)} bytes"
        if echoed != payload:
            first = next(i for i in range(len(payload)) if echoed[i] != payload[i])
            raise AssertionError(
                f"echo differs at byte {first}: sent {payload[first:first+8].hex()}, "
                f"got {bytes(echoed[first:first+8]).hex()}")
        return elapsed

    def monitor_command(self, command):
        self.mon.sendall(command.encode() + b"\n")

    def stop(self):
        for s in (self.uart, self.mon):
            if s is not None:
                s.close()
        if self.proc.poll() is None:
            self.proc.terminate()  # `timeout` passes SIGTERM on to QEMU
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def check_echo(args, workdir):
    qemu = Qemu(args.elf, workdir)
    try:
        m = qemu.expect(BANNER)
        boot_ms = (time.monotonic() - qemu.started) * 1000
        info = [f"boot id {m.group(1).decode()}", f"boot-to-banner {boot_ms:.0f} ms"]

        rng = random.Random(args.seed)
        payload = bytearray(rng.randbytes(64 * 1024))
        # Make sure every byte value is there, the delimiter 0x00 and 0x01
        # (QEMU's mux escape) in particular, and long runs of both.
        payload[0:256] = bytes(range(256))
        payload[1000:1064] = b"\x00" * 32 + b"\x01" * 32
        payload = bytes(payload)

        elapsed = qemu.echo(payload)
        info.append(f"64 KiB echoed in {elapsed*1000:.0f} ms "
                    f"({len(payload)/elapsed/1024:.0f} KiB/s each way)")

        # Nothing to do now: the firmware should sit in `wfi`.
        pid = qemu.qemu_pid()
        time.sleep(0.3)
        before = cpu_seconds(pid)
        time.sleep(args.idle_seconds)
        used = cpu_seconds(pid) - before
        info.append(f"idle CPU {100 * used / args.idle_seconds:.1f}% of one core")
        return ", ".join(info)
    finally:
        qemu.stop()


def check_slow_reader(args, workdir):
    qemu = Qemu(args.slow_elf, workdir)
    try:
        qemu.expect(BANNER)
        payload = random.Random(args.seed + 1).randbytes(16 * 1024)
        elapsed = qemu.echo(payload)
        pauses = int(qemu.expect(re.compile(rb"\r\nrx pauses=(\d+)\r\n")).group(1))
        assert pauses > 0, "the receive ring never filled: the pause path was not exercised"
        return f"16 KiB echoed byte-exact in {elapsed*1000:.0f} ms through {pauses} ring-full pauses"
    finally:
        qemu.stop()


def check_reset(args, workdir):
    qemu = Qemu(args.elf, workdir, monitor=True)
    try:
        ids = [qemu.expect(BANNER).group(1)]
        for _ in range(2):
            qemu.monitor_command("system_reset")
            ids.append(qemu.expect(BANNER).group(1))
        assert len(set(ids)) == len(ids), f"boot id repeated across resets: {ids}"
        return "ids " + " -> ".join(i.decode() for i in ids)
    finally:
        qemu.stop()


def check_panic(args, workdir):
    qemu = Qemu(args.panic_elf, workdir)
    deadline_line = re.compile(rb"deadline asked=(\d+)us slept=(\d+)us\r\n")
    boot_line = re.compile(rb"panicking in boot ([0-9a-f]{8})\r\n")
    panic_line = re.compile(
        rb"\x00\r\npanicked at [^\r\n]*deadline_panic\.rs:\d+: deliberate panic\r\n\x00")
    try:
        ids, slept, host_ms = [], [], []
        for _ in range(3):
            boot_id = qemu.expect(BANNER).group(1)
            banner_at = time.monotonic()
            m = qemu.expect(deadline_line)
            host_ms.append((time.monotonic() - banner_at) * 1000)
            asked, got = int(m.group(1)), int(m.group(2))
            assert got >= asked, f"sleep_until returned early: asked {asked} us, slept {got} us"
            slept.append(got)
            m = qemu.expect(boot_line)
            assert m.group(1) == boot_id, f"panic names boot {m.group(1)}, banner said {boot_id}"
            qemu.expect(panic_line)
            ids.append(boot_id)
        assert len(set(ids)) == len(ids), f"boot id repeated across panic resets: {ids}"
        return ("ids " + " -> ".join(i.decode() for i in ids)
                + ", 500000 us deadline slept " + "/".join(map(str, slept))
                + " us by the board clock, " + "/".join(f"{t:.0f}" for t in host_ms)
                + " ms by the host's")
    finally:
        qemu.stop()


def survey(args, workdir):
    ids, times = [], []
    for _ in range(args.survey):
        qemu = Qemu(args.elf, workdir)
        try:
            ids.append(qemu.expect(BANNER).group(1))
            times.append((time.monotonic() - qemu.started) * 1000)
        finally:
            qemu.stop()
    return (f"{len(set(ids))} distinct boot ids in {len(ids)} fresh boots; boot-to-banner "
            f"min {min(times):.0f} / median {statistics.median(times):.0f} / "
            f"max {max(times):.0f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--elf", required=True, help="the echo firmware (release ELF)")
    ap.add_argument("--panic-elf", required=True, help="the deadline_panic example ELF")
    ap.add_argument("--slow-elf", required=True, help="the slow_echo example ELF")
    ap.add_argument("--seed", type=int, default=6965, help="random payload seed")
    ap.add_argument("--idle-seconds", type=float, default=2.0)
    ap.add_argument("--survey", type=int, default=0, metavar="N",
                    help="also boot N fresh QEMUs and report boot-id uniqueness")
    args = ap.parse_args()

    for path in (args.elf, args.panic_elf, args.slow_elf):
        if not os.path.isfile(path):
            sys.exit(f"error: {path} does not exist; build it first (see boards/README.md)")
    if shutil.which("qemu-system-arm") is None:
        sys.exit("error: qemu-system-arm not found; install it with "
                 "`apt-get install qemu-system-arm`")

    checks = [("echo", check_echo), ("slow-reader", check_slow_reader),
              ("reset", check_reset), ("panic", check_panic)]
    if args.survey:
        checks.append(("survey", survey))
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="corral-qemu-") as workdir:
        for name, check in checks:
            try:
                detail = check(args, workdir)
            except Exception as e:  # report every failure, then go on
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            else:
                passed += 1
                print(f"ok   {name}: {detail}", flush=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
