"""A fake BlueZ (org.bluez) on a private D-Bus bus, with one simulated Nuki lock behind it.

Serves ObjectManager, Adapter1, Device1, GattService1, GattCharacteristic1 and
GattDescriptor1 the way btleplug (through bluez-async) reads them: Connect turns
ServicesResolved true, GATT children are named serviceXXXX/charXXXX/descXXXX, and
indications are PropertiesChanged of Value after StartNotify.

Test controls live on /org/leasegate/fake, interface org.leasegate.FakeLock (call them with
dbus-send): SetBusy(u), SetMaxCodes(u), SetPairingMode(b), DisconnectAfterWrites(u),
SetIntervalMs(u), RemoveCode(q) (an edit on the lock itself), GetState() -> s (JSON).

Usage: fake_bluez.py --address unix:path=... [--mac AA:..] [--name Nuki_..] [--pin 1234]
                     [--interval-ms 0] [--max-codes 100]
Prints "READY" on stdout once it owns org.bluez.
"""
import argparse
import asyncio
import json
import sys

from dbus_next import BusType, Message, MessageType, Variant  # noqa: F401
from dbus_next.aio import MessageBus
from dbus_next.constants import NameFlag, RequestNameReply

from nuki_lock import NukiLock

OM = "org.freedesktop.DBus.ObjectManager"
PROPS = "org.freedesktop.DBus.Properties"
INTRO = "org.freedesktop.DBus.Introspectable"
ADAPTER = "org.bluez.Adapter1"
DEVICE = "org.bluez.Device1"
SERVICE = "org.bluez.GattService1"
CHAR = "org.bluez.GattCharacteristic1"
DESC = "org.bluez.GattDescriptor1"
CONTROL = "org.leasegate.FakeLock"
CONTROL_PATH = "/org/leasegate/fake"

PAIRING_SERVICE = "a92ee100-5501-11e4-916c-0800200c9a66"
PAIRING_GDIO = "a92ee101-5501-11e4-916c-0800200c9a66"
KEYTURNER_SERVICE = "a92ee200-5501-11e4-916c-0800200c9a66"
KEYTURNER_GDIO = "a92ee201-5501-11e4-916c-0800200c9a66"
KEYTURNER_USDIO = "a92ee202-5501-11e4-916c-0800200c9a66"
CCCD = "00002902-0000-1000-8000-00805f9b34fb"


class Fake:
    def __init__(self, bus, args):
        self.bus = bus
        self.args = args
        self.lock = NukiLock(pin=args.pin, max_codes=args.max_codes)
        self.interval = args.interval_ms / 1000.0
        self.disconnect_after = 0  # 0 = never
        self.writes = 0
        self.connects = 0
        self.objects = {}  # path -> {iface: {prop: Variant}}
        self.queue = asyncio.Queue()  # (path, value) indications, sent in order
        adapter = "/org/bluez/hci0"
        self.adapter = adapter
        self.objects[adapter] = {ADAPTER: {
            "Address": Variant("s", "00:1A:7D:DA:71:13"),
            "AddressType": Variant("s", "public"),
            "Name": Variant("s", "fakehci"),
            "Alias": Variant("s", "fakehci"),
            "Modalias": Variant("s", "usb:v1D6Bp0246d0537"),
            "Powered": Variant("b", True),
            "Discovering": Variant("b", False),
            "Discoverable": Variant("b", False),
            "Pairable": Variant("b", True),
            "Class": Variant("u", 0),
            "UUIDs": Variant("as", []),
        }}
        dev = adapter + "/dev_" + args.mac.replace(":", "_")
        self.dev = dev
        self.objects[dev] = {DEVICE: {
            "Address": Variant("s", args.mac),
            "AddressType": Variant("s", "random"),
            "Name": Variant("s", args.name),
            "Alias": Variant("s", args.name),
            "Paired": Variant("b", False),
            "Connected": Variant("b", False),
            "Trusted": Variant("b", False),
            "Blocked": Variant("b", False),
            "LegacyPairing": Variant("b", False),
            "ServicesResolved": Variant("b", False),
            "RSSI": Variant("n", -60),
            "UUIDs": Variant("as", [PAIRING_SERVICE, KEYTURNER_SERVICE]),
            "Adapter": Variant("o", adapter),
        }}
        self.chars = {}
        handle = 0x0b
        for suuid, cuuids in [(PAIRING_SERVICE, [PAIRING_GDIO]),
                              (KEYTURNER_SERVICE, [KEYTURNER_GDIO, KEYTURNER_USDIO])]:
            spath = f"{dev}/service{handle:04x}"
            self.objects[spath] = {SERVICE: {
                "UUID": Variant("s", suuid), "Primary": Variant("b", True),
                "Device": Variant("o", dev), "Includes": Variant("ao", []),
                "Handle": Variant("q", handle)}}
            handle += 1
            for cu in cuuids:
                cpath = f"{spath}/char{handle:04x}"
                self.objects[cpath] = {CHAR: {
                    "UUID": Variant("s", cu), "Service": Variant("o", spath),
                    "Value": Variant("ay", b""), "Notifying": Variant("b", False),
                    "Flags": Variant("as", ["write", "indicate"]),
                    "Handle": Variant("q", handle)}}
                self.chars[cpath] = cu
                handle += 1
                dpath = f"{cpath}/desc{handle:04x}"
                self.objects[dpath] = {DESC: {
                    "UUID": Variant("s", CCCD), "Characteristic": Variant("o", cpath),
                    "Value": Variant("ay", b""), "Flags": Variant("as", ["read", "write"]),
                    "Handle": Variant("q", handle)}}
                handle += 1
        self.objects[CONTROL_PATH] = {CONTROL: {}}

    # ---- D-Bus plumbing
    def reply(self, msg, signature="", body=None):
        self.bus.send(Message.new_method_return(msg, signature, body or []))

    def error(self, msg, name, text):
        self.bus.send(Message.new_error(msg, name, text))

    def signal(self, path, iface, member, signature, body):
        self.bus.send(Message.new_signal(path, iface, member, signature, body))

    def set_props(self, path, iface, changes):
        for k, v in changes.items():
            self.objects[path][iface][k] = v
        self.signal(path, PROPS, "PropertiesChanged", "sa{sv}as", [iface, changes, []])

    def introspect(self, path):
        ifaces = self.objects.get(path, {})
        prefix = "" if path == "/" else path
        children = set()
        for p in self.objects:
            if p.startswith(prefix + "/") and p != path:
                rest = p[len(prefix) + 1:]
                children.add(rest.split("/")[0])
        xml = ['<node>']
        for i in [INTRO, PROPS] + list(ifaces):
            xml.append(f'<interface name="{i}"></interface>')
        if path == "/":
            xml.append(f'<interface name="{OM}"></interface>')
        for c in sorted(children):
            xml.append(f'<node name="{c}"/>')
        xml.append('</node>')
        return "".join(xml)

    def handle(self, msg):
        if msg.message_type != MessageType.METHOD_CALL:
            return None
        try:
            asyncio.get_running_loop().create_task(self.dispatch(msg))
        except Exception as e:  # pragma: no cover
            print("dispatch error", e, file=sys.stderr)
        return True

    async def dispatch(self, msg):
        try:
            await self._dispatch(msg)
        except Exception as e:
            print(f"error in {msg.interface}.{msg.member}: {e!r}", file=sys.stderr)
            self.error(msg, "org.bluez.Error.Failed", str(e))

    async def _dispatch(self, msg):
        path, iface, member = msg.path, msg.interface, msg.member
        if iface == INTRO and member == "Introspect":
            return self.reply(msg, "s", [self.introspect(path)])
        if iface == OM and member == "GetManagedObjects":
            objs = {p: i for p, i in self.objects.items() if p.startswith("/org/bluez")}
            return self.reply(msg, "a{oa{sa{sv}}}", [objs])
        if iface == PROPS:
            if member == "GetAll":
                props = self.objects.get(path, {}).get(msg.body[0])
                if props is None:
                    return self.error(msg, "org.freedesktop.DBus.Error.UnknownInterface", msg.body[0])
                return self.reply(msg, "a{sv}", [props])
            if member == "Get":
                v = self.objects.get(path, {}).get(msg.body[0], {}).get(msg.body[1])
                if v is None:
                    return self.error(msg, "org.freedesktop.DBus.Error.UnknownProperty", msg.body[1])
                return self.reply(msg, "v", [v])
            if member == "Set":
                self.set_props(path, msg.body[0], {msg.body[1]: msg.body[2]})
                return self.reply(msg)
        if iface == ADAPTER:
            if member in ("SetDiscoveryFilter",):
                return self.reply(msg)
            if member == "StartDiscovery":
                self.set_props(path, ADAPTER, {"Discovering": Variant("b", True)})
                self.reply(msg)
                # announce the lock as just discovered
                self.signal("/", OM, "InterfacesAdded", "oa{sa{sv}}", [self.dev, self.objects[self.dev]])
                return
            if member == "StopDiscovery":
                self.set_props(path, ADAPTER, {"Discovering": Variant("b", False)})
                return self.reply(msg)
            if member == "GetDiscoveryFilters":
                return self.reply(msg, "as", [["UUIDs", "RSSI", "Transport", "DuplicateData"]])
            if member == "RemoveDevice":
                return self.reply(msg)
        if iface == DEVICE and path == self.dev:
            if member == "Connect":
                await asyncio.sleep(self.interval * 3)
                self.connects += 1
                self.writes_since_connect = 0
                self.set_props(path, DEVICE, {"Connected": Variant("b", True)})
                self.reply(msg)
                self.set_props(path, DEVICE, {"ServicesResolved": Variant("b", True)})
                return
            if member == "Disconnect":
                self.drop_link()
                return self.reply(msg)
            if member in ("Pair", "CancelPairing"):
                return self.reply(msg)
        if iface == CHAR and path in self.chars:
            return await self.characteristic(msg, path, member)
        if iface == DESC:
            if member == "ReadValue":
                return self.reply(msg, "ay", [b"\x02\x00"])
            if member == "WriteValue":
                return self.reply(msg)
        if iface == CONTROL:
            return self.control(msg, member)
        self.error(msg, "org.freedesktop.DBus.Error.UnknownMethod", f"{iface}.{member} on {path}")

    def connected(self):
        return self.objects[self.dev][DEVICE]["Connected"].value

    def drop_link(self):
        if not self.connected():
            return
        self.lock.reset_link()
        while not self.queue.empty():
            self.queue.get_nowait()
        for c in self.chars:
            self.objects[c][CHAR]["Notifying"] = Variant("b", False)
        self.set_props(self.dev, DEVICE, {"ServicesResolved": Variant("b", False),
                                          "Connected": Variant("b", False)})

    async def characteristic(self, msg, path, member):
        if not self.connected():
            return self.error(msg, "org.bluez.Error.NotConnected", "Not connected")
        if member == "StartNotify":
            self.set_props(path, CHAR, {"Notifying": Variant("b", True)})
            return self.reply(msg)
        if member == "StopNotify":
            self.set_props(path, CHAR, {"Notifying": Variant("b", False)})
            return self.reply(msg)
        if member == "ReadValue":
            return self.reply(msg, "ay", [self.objects[path][CHAR]["Value"].value])
        if member == "WriteValue":
            value = bytes(msg.body[0])
            if len(value) > 20:
                return self.error(msg, "org.bluez.Error.InvalidValueLength", "over 20 bytes")
            # A write request and its response take one connection interval.
            await asyncio.sleep(self.interval)
            if not self.connected():
                return self.error(msg, "org.bluez.Error.Failed", "Not connected")
            self.writes += 1
            self.reply(msg)
            uuid = self.chars[path]
            out = self.lock.on_gdio(value) if uuid == PAIRING_GDIO else (
                self.lock.on_usdio(value) if uuid == KEYTURNER_USDIO else [])
            for m in out:
                for i in range(0, len(m), 20):
                    self.queue.put_nowait((path, m[i:i + 20]))
            if self.disconnect_after and self.writes >= self.disconnect_after:
                self.disconnect_after = 0
                self.drop_link()
            return
        self.error(msg, "org.freedesktop.DBus.Error.UnknownMethod", member)

    async def indications(self):
        while True:
            path, chunk = await self.queue.get()
            # An indication and its confirmation take one connection interval.
            await asyncio.sleep(self.interval)
            if not self.connected() or not self.objects[path][CHAR]["Notifying"].value:
                continue
            self.set_props(path, CHAR, {"Value": Variant("ay", chunk)})

    def control(self, msg, member):
        b = msg.body
        if member == "SetBusy":
            self.lock.busy = b[0]
        elif member == "SetMaxCodes":
            self.lock.max_codes = b[0]
        elif member == "SetPairingMode":
            self.lock.pairing_mode = bool(b[0])
        elif member == "DisconnectAfterWrites":
            self.disconnect_after = self.writes + b[0] if b[0] else 0
        elif member == "RemoveCode":
            self.lock.codes.pop(b[0], None)
        elif member == "SetIntervalMs":
            self.interval = b[0] / 1000.0
        elif member == "GetState":
            st = self.lock.state()
            st["connects"] = self.connects
            st["writes"] = self.writes
            st["connected"] = self.connected()
            return self.reply(msg, "s", [json.dumps(st, sort_keys=True)])
        else:
            return self.error(msg, "org.freedesktop.DBus.Error.UnknownMethod", member)
        self.reply(msg)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", required=True)
    ap.add_argument("--mac", default="C2:4B:1A:00:00:01")
    ap.add_argument("--name", default="Nuki_2A1B3C4D")
    ap.add_argument("--pin", type=int, default=1234)
    ap.add_argument("--interval-ms", type=float, default=0)
    ap.add_argument("--max-codes", type=int, default=100)
    args = ap.parse_args()
    bus = await MessageBus(bus_address=args.address).connect()
    fake = Fake(bus, args)
    bus.add_message_handler(fake.handle)
    # A previous fake on the same bus may still be releasing the name: poll until ours.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        reply = await bus.request_name("org.bluez", NameFlag.DO_NOT_QUEUE)
        if reply in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            break
        if loop.time() > deadline:
            print("cannot own org.bluez", file=sys.stderr)
            sys.exit(2)
        await asyncio.sleep(0.05)
    print("READY", flush=True)
    await fake.indications()


if __name__ == "__main__":
    asyncio.run(main())
