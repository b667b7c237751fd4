"""The leasegate credential profile (protocols/osdp/credential-profile.md), written from the
document alone, for the libosdp test PD. Pure functions and a dict-backed store."""

import hashlib
import struct

VERSION = 1
UPSERT, DELETE, DIGEST, LIST = 1, 2, 3, 4
OK, STALE, FULL, BAD_RECORD = 0, 1, 2, 3
MALFORMED, UNKNOWN_OP, UNSUPPORTED_VERSION = 0x10, 0x11, 0x12


class Malformed(Exception):
    pass


def parse_record(buf, pos):
    if len(buf) < pos + 23:
        raise Malformed("truncated record")
    rid, ver, doors, vfrom, vuntil, kind, n = struct.unpack_from("<IIIIIBB", buf, pos)
    pos += 22
    if kind == 1:
        size = (n + 7) // 8
    elif kind == 2:
        size = n
    else:
        raise Malformed("credential type")
    if len(buf) < pos + size:
        raise Malformed("truncated credential")
    cred = bytes(buf[pos:pos + size])
    pos += size
    return {"id": rid, "version": ver, "doors": doors, "valid_from": vfrom,
            "valid_until": vuntil, "kind": kind, "len": n, "cred": cred}, pos


def encode_record(r):
    return struct.pack("<IIIIIBB", r["id"], r["version"], r["doors"], r["valid_from"],
                       r["valid_until"], r["kind"], r["len"]) + r["cred"]


def valid(r):
    if r["id"] == 0 or r["valid_until"] <= r["valid_from"]:
        return False
    if r["kind"] == 1:
        bits = r["len"]
        if bits == 0:
            return False
        spare = len(r["cred"]) * 8 - bits
        return spare == 0 or r["cred"][-1] & ((1 << spare) - 1) == 0
    return 4 <= r["len"] <= 12 and all(0x30 <= b <= 0x39 for b in r["cred"])


class Store:
    def __init__(self, capacity=10000):
        self.records = {}
        self.capacity = capacity

    def digest(self):
        h = hashlib.sha256()
        for rid in sorted(self.records):
            h.update(encode_record(self.records[rid]))
        return h.digest()[:16]

    def upsert(self, r):
        if not valid(r):
            return BAD_RECORD
        cur = self.records.get(r["id"])
        if cur is not None:
            if cur["version"] > r["version"]:
                return STALE
            if cur["version"] == r["version"]:
                return OK if cur == r else STALE
        elif len(self.records) >= self.capacity:
            return FULL
        self.records[r["id"]] = r
        return OK

    def delete(self, rid, ver):
        cur = self.records.get(rid)
        if cur is None:
            return OK
        if cur["version"] > ver:
            return STALE
        del self.records[rid]
        return OK

    def handle(self, data, max_reply=64):
        """Request bytes -> response bytes, or None when the header does not parse."""
        data = bytes(data)
        if len(data) < 6:
            return None
        ver, op, req = struct.unpack_from("<BBI", data, 0)

        def refuse(status):
            return struct.pack("<BBIB", VERSION, (op & 0x7F) | 0x80, req, status)

        if ver != VERSION:
            return refuse(UNSUPPORTED_VERSION)
        head = struct.pack("<BBIB", VERSION, op | 0x80, req, OK)
        try:
            pos = 6
            if op == UPSERT:
                n = data[pos]; pos += 1
                recs = []
                for _ in range(n):
                    r, pos = parse_record(data, pos)
                    recs.append(r)
                if pos != len(data):
                    raise Malformed("trailing")
                st = [self.upsert(r) for r in recs]
                return head + bytes([len(st)]) + bytes(st)
            if op == DELETE:
                n = data[pos]; pos += 1
                if len(data) != pos + 8 * n:
                    raise Malformed("length")
                st = [self.delete(*struct.unpack_from("<II", data, pos + 8 * i)) for i in range(n)]
                return head + bytes([len(st)]) + bytes(st)
            if op == DIGEST:
                if len(data) != 6:
                    raise Malformed("length")
                return head + struct.pack("<I", len(self.records)) + self.digest()
            if op == LIST:
                if len(data) != 11:
                    raise Malformed("length")
                after, mx = struct.unpack_from("<IB", data, 6)
                cap = min(mx, (max_reply - 9) // 8, 255)
                ids = sorted(i for i in self.records if i > after)
                page = ids[:cap]
                body = bytes([1 if len(ids) > len(page) else 0, len(page)])
                for i in page:
                    body += struct.pack("<II", i, self.records[i]["version"])
                return head + body
            return refuse(UNKNOWN_OP)
        except (Malformed, IndexError, struct.error):
            return refuse(MALFORMED)
