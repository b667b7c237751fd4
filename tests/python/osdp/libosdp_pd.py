"""A libosdp 3.2.9 PD (PyPI `libosdp`, module `osdp`) that keeps a credential store by the
leasegate credential profile: each osdp_MFG is ACKed, and its response goes out as a
ManufacturerReply event on the next POLL. The store is dumped to --store-file (JSON) after
every change, for the test's read-back.

Usage: libosdp_pd.py --tty PATH --address N --vendor 0x4c4701 --store-file F
                     [--scbk HEX | --install-mode]
"""

import argparse
import json
import os
import queue
import sys
import termios
import time
import tty as ttymod

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import osdp  # noqa: E402  (libosdp)
import profile  # noqa: E402  (this folder: the credential profile)


class TtyChannel(osdp.Channel):
    def __init__(self, path):
        super().__init__()
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        ttymod.setraw(self.fd)
        attrs = termios.tcgetattr(self.fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)

    def read(self, max_bytes):
        try:
            return os.read(self.fd, max_bytes)
        except BlockingIOError:
            return b""

    def write(self, buf):
        try:
            return os.write(self.fd, bytes(buf))
        except BlockingIOError:
            return 0

    def flush(self):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tty", required=True)
    ap.add_argument("--address", type=int, default=101)
    ap.add_argument("--vendor", type=lambda s: int(s, 0), default=0x4C4701)
    ap.add_argument("--store-file", required=True)
    ap.add_argument("--scbk")
    ap.add_argument("--install-mode", action="store_true")
    args = ap.parse_args()

    store = profile.Store()
    replies = queue.Queue()

    def dump():
        recs = {str(i): [r["version"], profile.encode_record(r).hex()] for i, r in store.records.items()}
        tmp = args.store_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"records": recs, "digest": store.digest().hex(), "count": len(recs)}, f)
        os.replace(tmp, args.store_file)

    def on_command(cmd):
        if cmd.get("command") == osdp.Command.Manufacturer:
            if cmd.get("vendor_code") != args.vendor:
                return -1, None
            resp = store.handle(bytes(cmd["data"]), max_reply=64)
            if resp is None:
                return -1, None
            dump()
            # submit_event inside this callback deadlocks: the main loop sends it.
            replies.put(resp)
            return 0, None
        if cmd.get("command") == osdp.Command.Keyset:
            print("keyset received", file=sys.stderr, flush=True)
            return 0, None
        return 0, None

    flags = []
    if args.install_mode:
        flags.append(osdp.LibFlag.InstallMode)
    scbk = bytes.fromhex(args.scbk) if args.scbk else None
    info = osdp.PDInfo(args.address, TtyChannel(args.tty), scbk=scbk, flags=flags,
                       id=osdp.PdId(1, 1, args.vendor, 0x4C470001, 0x000100))
    caps = osdp.PDCapabilities([
        (osdp.Capability.CommunicationSecurity, 1, 1),
        (osdp.Capability.ReceiveBufferSize, 0, 1),
    ])
    pd = osdp.PeripheralDevice(info, caps, log_level=osdp.LogLevel.Warning, command_handler=on_command)
    pd.start()
    dump()
    print("ready", flush=True)
    try:
        while True:
            try:
                resp = replies.get(timeout=0.005)
            except queue.Empty:
                continue
            pd.submit_event({"event": osdp.Event.ManufacturerReply, "vendor_code": args.vendor, "data": resp})
    except KeyboardInterrupt:
        pass
    finally:
        pd.stop()


if __name__ == "__main__":
    main()
