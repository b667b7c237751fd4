"""A simulated Nuki Smart Lock (BLE API v2.2.1 as leasegate reads it): pairing on the GDIO
characteristic, challenge-protected keypad-code and authorization commands on USDIO.

Pure protocol state; the D-Bus side (fake_bluez.py) feeds it written values and sends the
values it returns as indications. Faults for tests: BUSY answers, a code capacity
(TOO_MANY_ENTRIES), pairing mode off.
"""
import hashlib
import hmac
import os
import struct

from nacl.bindings import crypto_box_beforenm, crypto_scalarmult_base
from nacl.secret import SecretBox

REQUEST_DATA = 0x0001
PUBLIC_KEY = 0x0003
CHALLENGE = 0x0004
AUTH_AUTHENTICATOR = 0x0005
AUTH_DATA = 0x0006
AUTH_ID = 0x0007
REMOVE_AUTH = 0x0008
REQUEST_AUTHS = 0x0009
AUTH_ENTRY = 0x000A
AUTH_DATA_INVITE = 0x000B
KEYTURNER_STATES = 0x000C
STATUS = 0x000E
ERROR_REPORT = 0x0012
AUTH_ID_CONFIRM = 0x001E
AUTH_ID_INVITE = 0x001F
AUTH_ENTRY_COUNT = 0x0027
ADD_CODE = 0x0041
CODE_ID = 0x0042
REQUEST_CODES = 0x0043
CODE_COUNT = 0x0044
CODE_ENTRY = 0x0045
UPDATE_CODE = 0x0046
REMOVE_CODE = 0x0047

P_ERROR_NOT_PAIRING = 0x10
P_ERROR_BAD_AUTHENTICATOR = 0x11
K_ERROR_BAD_PIN = 0x21
K_ERROR_BAD_NONCE = 0x22
K_ERROR_BAD_PARAMETER = 0x23
K_ERROR_TOO_MANY_ENTRIES = 0x29
K_ERROR_CODE_ALREADY_EXISTS = 0x2A
K_ERROR_CODE_INVALID = 0x2B
K_ERROR_BUSY = 0x45
ERROR_BAD_CRC = 0xFD

PLAIN_LEN = {REQUEST_DATA: 2, PUBLIC_KEY: 32, AUTH_AUTHENTICATOR: 32, AUTH_DATA: 101,
             AUTH_ID_CONFIRM: 36}


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def plain(cmd: int, payload: bytes) -> bytes:
    body = struct.pack("<H", cmd) + payload
    return body + struct.pack("<H", crc16(body))


def h1(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def zero_date() -> bytes:
    return b"\0" * 7


class NukiLock:
    def __init__(self, pin: int = 1234, max_codes: int = 100, pairing_mode: bool = True):
        self.sk = os.urandom(32)
        self.pk = crypto_scalarmult_base(self.sk)
        self.pin = pin
        self.max_codes = max_codes
        self.pairing_mode = pairing_mode
        self.busy = 0  # answer the next N admin commands with BUSY
        self.codes = {}  # id -> dict(code, name, enabled, limits)
        self.next_code_id = 1
        self.auths = {}  # auth id -> dict(key, name, id_type)
        self.next_auth_id = 2
        self.challenge = None
        self.pairing = {}
        self.gdio_buf = b""
        self.usdio_buf = b""
        self.stats = {"admin_commands": 0, "busy_sent": 0, "errors": {}}

    # ---- helpers
    def reset_link(self):
        """A disconnect: partial messages and the outstanding challenge are gone."""
        self.gdio_buf = b""
        self.usdio_buf = b""
        self.challenge = None
        self.pairing = {}

    def state(self):
        return {
            "codes": {str(i): {"code": c["code"], "name": c["name"], "enabled": c["enabled"],
                               "limits": c["limits"].hex()} for i, c in self.codes.items()},
            "auths": {str(i): {"name": a["name"], "id_type": a["id_type"]}
                      for i, a in self.auths.items()},
            "stats": self.stats,
            "pairing_mode": self.pairing_mode,
        }

    # ---- pairing characteristic
    def on_gdio(self, value: bytes):
        self.gdio_buf += value
        out = []
        while len(self.gdio_buf) >= 2:
            cmd = struct.unpack_from("<H", self.gdio_buf)[0]
            if cmd not in PLAIN_LEN:
                self.gdio_buf = b""
                out.append(plain(ERROR_REPORT, bytes([0xFF]) + struct.pack("<H", cmd)))
                break
            total = 2 + PLAIN_LEN[cmd] + 2
            if len(self.gdio_buf) < total:
                break
            msg, self.gdio_buf = self.gdio_buf[:total], self.gdio_buf[total:]
            if crc16(msg[:-2]) != struct.unpack_from("<H", msg, total - 2)[0]:
                out.append(plain(ERROR_REPORT, bytes([ERROR_BAD_CRC]) + struct.pack("<H", cmd)))
                continue
            out.extend(self._pairing_step(cmd, msg[2:-2]))
        return out

    def _perr(self, code, cmd):
        self.pairing = {}
        return [plain(ERROR_REPORT, bytes([code]) + struct.pack("<H", cmd))]

    def _pairing_step(self, cmd, p):
        st = self.pairing
        if cmd == REQUEST_DATA and struct.unpack("<H", p)[0] == PUBLIC_KEY:
            if not self.pairing_mode:
                return self._perr(P_ERROR_NOT_PAIRING, cmd)
            self.pairing = {"step": "pk"}
            return [plain(PUBLIC_KEY, self.pk)]
        if cmd == PUBLIC_KEY and st.get("step") == "pk":
            st["app_pk"] = p
            st["key"] = crypto_box_beforenm(p, self.sk)
            st["nk"] = os.urandom(32)
            st["step"] = "auth"
            return [plain(CHALLENGE, st["nk"])]
        if cmd == AUTH_AUTHENTICATOR and st.get("step") == "auth":
            if not hmac.compare_digest(p, h1(st["key"], st["app_pk"], self.pk, st["nk"])):
                return self._perr(P_ERROR_BAD_AUTHENTICATOR, cmd)
            st["nk"] = os.urandom(32)
            st["step"] = "data"
            return [plain(CHALLENGE, st["nk"])]
        if cmd == AUTH_DATA and st.get("step") == "data":
            a, data = p[:32], p[32:]
            if not hmac.compare_digest(a, h1(st["key"], data, st["nk"])):
                return self._perr(P_ERROR_BAD_AUTHENTICATOR, cmd)
            id_type = data[0]
            name = data[5:37].rstrip(b"\0").decode("utf-8", "replace")
            na = data[37:69]
            st.update(id_type=id_type, name=name, auth_id=self.next_auth_id,
                      uuid=os.urandom(16), nk=os.urandom(32), step="confirm")
            aid = struct.pack("<I", st["auth_id"])
            lock_auth = h1(st["key"], aid, st["uuid"], st["nk"], na)
            return [plain(AUTH_ID, lock_auth + aid + st["uuid"] + st["nk"])]
        if cmd == AUTH_ID_CONFIRM and st.get("step") == "confirm":
            a, aid = p[:32], p[32:36]
            if struct.unpack("<I", aid)[0] != st["auth_id"] or not hmac.compare_digest(
                    a, h1(st["key"], aid, st["nk"])):
                return self._perr(P_ERROR_BAD_AUTHENTICATOR, cmd)
            self.auths[st["auth_id"]] = {"key": st["key"], "name": st["name"],
                                        "id_type": st["id_type"]}
            self.next_auth_id += 1
            self.pairing = {}
            return [plain(STATUS, b"\0")]
        return self._perr(0xFF, cmd)

    # ---- keyturner characteristic (encrypted)
    def on_usdio(self, value: bytes):
        self.usdio_buf += value
        out = []
        while len(self.usdio_buf) >= 30:
            length = struct.unpack_from("<H", self.usdio_buf, 28)[0]
            total = 30 + length
            if len(self.usdio_buf) < total:
                break
            msg, self.usdio_buf = self.usdio_buf[:total], self.usdio_buf[total:]
            nonce, auth_id = msg[:24], struct.unpack_from("<I", msg, 24)[0]
            auth = self.auths.get(auth_id)
            if auth is None:
                continue  # cannot answer without a key
            try:
                pdata = SecretBox(auth["key"]).decrypt(msg[30:], nonce)
            except Exception:
                continue
            if crc16(pdata[:-2]) != struct.unpack_from("<H", pdata, len(pdata) - 2)[0]:
                out.append(self._enc(auth_id, ERROR_REPORT, bytes([ERROR_BAD_CRC]) + b"\0\0"))
                continue
            cmd = struct.unpack_from("<H", pdata, 4)[0]
            for c, payload in self._command(auth_id, cmd, pdata[6:-2]):
                out.append(self._enc(auth_id, c, payload))
        return out

    def _enc(self, auth_id, cmd, payload):
        key = self.auths[auth_id]["key"]
        pdata = struct.pack("<IH", auth_id, cmd) + payload
        pdata += struct.pack("<H", crc16(pdata))
        nonce = os.urandom(24)
        boxed = SecretBox(key).encrypt(pdata, nonce).ciphertext  # tag | ciphertext
        return nonce + struct.pack("<IH", auth_id, len(boxed)) + boxed

    def _err(self, code, cmd):
        self.stats["errors"][hex(code)] = self.stats["errors"].get(hex(code), 0) + 1
        return [(ERROR_REPORT, bytes([code]) + struct.pack("<H", cmd))]

    def _command(self, auth_id, cmd, p):
        if cmd == REQUEST_DATA:
            what = struct.unpack("<H", p[:2])[0]
            if what == CHALLENGE:
                self.challenge = os.urandom(32)
                return [(CHALLENGE, self.challenge)]
            if what == KEYTURNER_STATES:
                # locked, battery 84 % (byte = 42 << 2)
                return [(KEYTURNER_STATES, bytes([2, 1, 0]) + struct.pack("<HBBBBB", 2026, 12, 4, 5, 0, 0)
                         + struct.pack("<h", 60) + bytes([42 << 2]) + b"\0\0")]
            return self._err(K_ERROR_BAD_PARAMETER, cmd)
        if len(p) < 34:
            return self._err(0xFE, cmd)
        nonce, pin = p[-34:-2], struct.unpack("<H", p[-2:])[0]
        body = p[:-34]
        if self.challenge is None or not hmac.compare_digest(nonce, self.challenge):
            return self._err(K_ERROR_BAD_NONCE, cmd)
        self.challenge = None
        self.stats["admin_commands"] += 1
        if self.busy > 0:
            self.busy -= 1
            self.stats["busy_sent"] += 1
            return self._err(K_ERROR_BUSY, cmd)
        if pin != self.pin:
            return self._err(K_ERROR_BAD_PIN, cmd)
        if cmd == ADD_CODE:
            code = struct.unpack_from("<I", body)[0]
            name = body[4:24].rstrip(b"\0").decode("utf-8", "replace")
            limits = body[24:44]
            s = str(code)
            if len(s) != 6 or "0" in s or s.startswith("12"):
                return self._err(K_ERROR_CODE_INVALID, cmd)
            if any(c["code"] == code for c in self.codes.values()):
                return self._err(K_ERROR_CODE_ALREADY_EXISTS, cmd)
            if len(self.codes) >= self.max_codes:
                return self._err(K_ERROR_TOO_MANY_ENTRIES, cmd)
            cid = self.next_code_id
            self.next_code_id += 1
            self.codes[cid] = {"code": code, "name": name, "enabled": True, "limits": limits}
            return [(CODE_ID, struct.pack("<H", cid))]
        if cmd == UPDATE_CODE:
            cid, code = struct.unpack_from("<HI", body)
            if cid not in self.codes:
                return self._err(K_ERROR_BAD_PARAMETER, cmd)
            if any(c["code"] == code and i != cid for i, c in self.codes.items()):
                return self._err(K_ERROR_CODE_ALREADY_EXISTS, cmd)
            self.codes[cid] = {"code": code, "name": body[6:26].rstrip(b"\0").decode(),
                               "enabled": body[26] != 0, "limits": body[27:47]}
            return [(STATUS, b"\0")]
        if cmd == REMOVE_CODE:
            cid = struct.unpack_from("<H", body)[0]
            if cid not in self.codes:
                return self._err(K_ERROR_BAD_PARAMETER, cmd)
            del self.codes[cid]
            return [(STATUS, b"\0")]
        if cmd == REQUEST_CODES:
            offset, count = struct.unpack_from("<HH", body)
            ids = sorted(self.codes)[offset:offset + count]
            out = [(CODE_COUNT, struct.pack("<H", len(ids)))]
            for i in ids:
                c = self.codes[i]
                out.append((CODE_ENTRY, struct.pack("<HI", i, c["code"])
                            + c["name"].encode()[:20].ljust(20, b"\0") + bytes([c["enabled"]])
                            + zero_date() + zero_date() + b"\0\0" + c["limits"]))
            out.append((STATUS, b"\0"))
            return out
        if cmd == REMOVE_AUTH:
            aid = struct.unpack_from("<I", body)[0]
            if aid not in self.auths:
                return self._err(K_ERROR_BAD_PARAMETER, cmd)
            out = [(STATUS, b"\0")]
            if aid == auth_id:
                return out  # removing ourselves: answer first (not exercised)
            del self.auths[aid]
            return out
        if cmd == AUTH_DATA_INVITE:
            name = body[:32].rstrip(b"\0").decode("utf-8", "replace")
            aid = self.next_auth_id
            self.next_auth_id += 1
            self.auths[aid] = {"key": body[33:65], "name": name, "id_type": body[32]}
            return [(AUTH_ID_INVITE, struct.pack("<I", aid) + zero_date())]
        if cmd == REQUEST_AUTHS:
            offset, count = struct.unpack_from("<HH", body)
            ids = sorted(self.auths)[offset:offset + count]
            out = [(AUTH_ENTRY_COUNT, struct.pack("<H", len(ids)))]
            for i in ids:
                a = self.auths[i]
                out.append((AUTH_ENTRY, struct.pack("<IB", i, a["id_type"])
                            + a["name"].encode()[:32].ljust(32, b"\0") + b"\x01\x01"
                            + zero_date() + zero_date() + b"\0\0" + b"\0" * 20))
            out.append((STATUS, b"\0"))
            return out
        return self._err(K_ERROR_BAD_PARAMETER, cmd)
