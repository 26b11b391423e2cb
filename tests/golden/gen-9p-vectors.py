#!/usr/bin/env python3
"""Writes tests/golden/9p-vectors.json.

Independent of the TypeScript codec: every vector is written field by field with struct.pack
following the layouts of reference §1.3 (body after size[4] type[1] tag[2], all little-endian),
and each message's length is checked against the "Total bytes" column of that table.

Run: python3 tests/golden/gen-9p-vectors.py
"""
import json, struct, os

NOTAG = 0xFFFF
NOFID = 0xFFFFFFFF

def u8(v): return struct.pack('<B', v)
def u16(v): return struct.pack('<H', v)
def u32(v): return struct.pack('<I', v)
def u64(v): return struct.pack('<Q', v)
def s(v):
    b = v.encode() if isinstance(v, str) else v
    return u16(len(b)) + b
def qid(t, ver, path): return u8(t) + u32(ver) + u64(path)

# JSON conventions (see _comment)
def N(v): return f"{v}n"                       # u64 -> "123n"
def JQ(t, ver, path): return {"type": t, "version": ver, "path": N(path)}
def JH(b): return {"hex": b.hex()}               # byte blob (D, or non-text s)

vectors = []

def add(name, typ, tag, fields, body, total):
    msg = u32(7 + len(body)) + u8(typ) + u16(tag) + body
    assert len(msg) == total, f"{name}: built {len(msg)} bytes, spec total says {total}"
    vectors.append({"name": name, "type": typ, "tag": tag, "fields": fields, "hex": msg.hex(),
                    "source": "spec §1.3 by hand (tests/golden/gen-9p-vectors.py, struct.pack field by field)"})

# ---------------------------------------------------------------- 9P2000.L
add("Rlerror", 7, 1, [2], u32(2), 11)                             # ENOENT
add("Rlerror", 7, 0x1234, [95], u32(95), 11)                      # EOPNOTSUPP
add("Tstatfs", 8, 2, [1], u32(1), 11)
add("Rstatfs", 9, 2, [0x01021997, 4096, N(262144), N(131072), N(131000), N(65536), N(60000), N(0x123456789ABCDEF0), 255],
    u32(0x01021997) + u32(4096) + u64(262144) + u64(131072) + u64(131000) + u64(65536) + u64(60000)
    + u64(0x123456789ABCDEF0) + u32(255), 67)
add("Tlopen", 12, 3, [2, 0o2304000], u32(2) + u32(0o2304000), 15)
add("Rlopen", 13, 3, [JQ(0x80, 0, 2), 0], qid(0x80, 0, 2) + u32(0), 24)
add("Tlcreate", 14, 4, [2, "foo", 0x8241, 0o100644, 1000], u32(2) + s("foo") + u32(0x8241) + u32(0o100644) + u32(1000), 25 + 3)
add("Rlcreate", 15, 4, [JQ(0, 0x5F5E1000, 0x10000000A), 65512], qid(0, 0x5F5E1000, 0x10000000A) + u32(65512), 24)
add("Tsymlink", 16, 5, [1, "link", "target/file", 1000], u32(1) + s("link") + s("target/file") + u32(1000), 19 + 4 + 11)
add("Rsymlink", 17, 5, [JQ(0x02, 0, 77), ], qid(0x02, 0, 77), 20)
add("Tmknod", 18, 6, [1, "fifo", 0o10644, 0, 0, 1000], u32(1) + s("fifo") + u32(0o10644) + u32(0) + u32(0) + u32(1000), 29 + 4)
add("Rmknod", 19, 6, [JQ(0, 0, 78)], qid(0, 0, 78), 20)
add("Trename", 20, 7, [3, 1, "newname"], u32(3) + u32(1) + s("newname"), 17 + 7)
add("Rrename", 21, 7, [], b"", 7)
add("Treadlink", 22, 8, [4], u32(4), 11)
add("Rreadlink", 23, 8, ["../some/target"], s("../some/target"), 9 + 14)
add("Tgetattr", 24, 9, [0, N(0x7FF)], u32(0) + u64(0x7FF), 19)
add("Tgetattr", 24, 9, [5, N(0x3FFF)], u32(5) + u64(0x3FFF), 19)
rg_fields = [N(0x17FF), JQ(0x80, 0x65000000, 0x0102030405060708), 0o40755, 1000, 100,
             N(3), N(0), N(4096), N(4096), N(8), N(1700000000), N(123456789), N(1700000001), N(987654321),
             N(1700000002), N(5), N(0), N(0), N(42), N(0)]
rg_body = (u64(0x17FF) + qid(0x80, 0x65000000, 0x0102030405060708) + u32(0o40755) + u32(1000) + u32(100)
           + u64(3) + u64(0) + u64(4096) + u64(4096) + u64(8) + u64(1700000000) + u64(123456789)
           + u64(1700000001) + u64(987654321) + u64(1700000002) + u64(5) + u64(0) + u64(0) + u64(42) + u64(0))
add("Rgetattr", 25, 9, rg_fields, rg_body, 160)
add("Rgetattr", 25, 10, [N(0x7FF), JQ(0, 1, 0xFFFFFFFFFFFFFFFF), 0o100644, 0, 0, N(1), N(0), N(0xFFFFFFFFFFFFFFFF),
                         N(4096), N(0), N(0), N(0), N(0), N(0), N(0), N(0), N(0), N(0), N(0), N(0)],
    u64(0x7FF) + qid(0, 1, 0xFFFFFFFFFFFFFFFF) + u32(0o100644) + u32(0) + u32(0) + u64(1) + u64(0)
    + u64(0xFFFFFFFFFFFFFFFF) + u64(4096) + u64(0) * 11, 160)
add("Tsetattr", 26, 11, [2, 0x1FF, 0o644, 1000, 1000, N(12345), N(1700000000), N(1), N(1700000003), N(999999999)],
    u32(2) + u32(0x1FF) + u32(0o644) + u32(1000) + u32(1000) + u64(12345) + u64(1700000000) + u64(1)
    + u64(1700000003) + u64(999999999), 67)
add("Rsetattr", 27, 11, [], b"", 7)
add("Txattrwalk", 30, 12, [2, 9, "user.comment"], u32(2) + u32(9) + s("user.comment"), 17 + 12)
add("Rxattrwalk", 31, 12, [N(17)], u64(17), 15)
add("Txattrcreate", 32, 13, [2, "user.comment", N(17), 1], u32(2) + s("user.comment") + u64(17) + u32(1), 25 + 12)
add("Rxattrcreate", 33, 13, [], b"", 7)
add("Treaddir", 40, 14, [2, N(0), 511976], u32(2) + u64(0) + u32(511976), 23)
d1 = qid(0x80, 0, 2) + u64(1) + u8(4) + s(".")
d2 = qid(0, 7, 0x1000) + u64(0x7FFFFFFF) + u8(8) + s("hello.txt")
dirents = d1 + d2
assert len(d1) == 24 + 1 and len(d2) == 24 + 9
add("Rreaddir", 41, 14, [JH(dirents)], u32(len(dirents)) + dirents, 11 + len(dirents))
add("Rreaddir", 41, 15, [JH(b"")], u32(0), 11)                      # EOF
add("Tfsync", 50, 16, [2, 1], u32(2) + u32(1), 15)
add("Rfsync", 51, 16, [], b"", 7)
add("Tlock", 52, 17, [2, 1, 1, N(0), N(0), 4242, "client-a"], u32(2) + u8(1) + u32(1) + u64(0) + u64(0) + u32(4242) + s("client-a"), 38 + 8)
add("Rlock", 53, 17, [0], u8(0), 8)
add("Tgetlock", 54, 18, [2, 0, N(100), N(50), 4242, "client-a"], u32(2) + u8(0) + u64(100) + u64(50) + u32(4242) + s("client-a"), 34 + 8)
add("Rgetlock", 55, 18, [2, N(100), N(50), 4242, "client-a"], u8(2) + u64(100) + u64(50) + u32(4242) + s("client-a"), 30 + 8)
add("Tlink", 70, 19, [1, 3, "hardlink"], u32(1) + u32(3) + s("hardlink"), 17 + 8)
add("Rlink", 71, 19, [], b"", 7)
add("Tmkdir", 72, 20, [1, "subdir", 0o755, 1000], u32(1) + s("subdir") + u32(0o755) + u32(1000), 21 + 6)
add("Rmkdir", 73, 20, [JQ(0x80, 0, 99)], qid(0x80, 0, 99), 20)
add("Trenameat", 74, 21, [1, "old", 4, "newer"], u32(1) + s("old") + u32(4) + s("newer"), 19 + 3 + 5)
add("Rrenameat", 75, 21, [], b"", 7)
add("Tunlinkat", 76, 22, [1, "subdir", 0x200], u32(1) + s("subdir") + u32(0x200), 17 + 6)
add("Runlinkat", 77, 22, [], b"", 7)

# ---------------------------------------------------------------- 9P2000 base
add("Tversion", 100, NOTAG, [512000, "9P2000.L"], u32(512000) + s("9P2000.L"), 21)
add("Rversion", 101, NOTAG, [512000, "9P2000.L"], u32(512000) + s("9P2000.L"), 21)
add("Rversion", 101, NOTAG, [8192, "unknown"], u32(8192) + s("unknown"), 13 + 7)
add("Tauth", 102, 23, [5, "nobody", "", NOFID], u32(5) + s("nobody") + s("") + u32(NOFID), 19 + 6 + 0)
add("Rauth", 103, 23, [JQ(0x08, 0, 1)], qid(0x08, 0, 1), 20)
add("Tattach", 104, 24, [0, NOFID, "nobody", "", NOFID], u32(0) + u32(NOFID) + s("nobody") + s("") + u32(NOFID), 23 + 6 + 0)
add("Tattach", 104, 25, [1, NOFID, "", "/export", 500], u32(1) + u32(NOFID) + s("") + s("/export") + u32(500), 23 + 0 + 7)
add("Rattach", 105, 24, [JQ(0x80, 0, 1)], qid(0x80, 0, 1), 20)
add("Tflush", 108, 26, [25], u16(25), 9)
add("Rflush", 109, 26, [], b"", 7)
add("Twalk", 110, 27, [0, 1, ["usr", "bin"]], u32(0) + u32(1) + u16(2) + s("usr") + s("bin"), 17 + (2 + 3) + (2 + 3))
add("Twalk", 110, 28, [1, 2, []], u32(1) + u32(2) + u16(0), 17)       # clone
add("Rwalk", 111, 27, [[JQ(0x80, 3, 10), JQ(0x80, 4, 11)]], u16(2) + qid(0x80, 3, 10) + qid(0x80, 4, 11), 9 + 13 * 2)
add("Rwalk", 111, 28, [[]], u16(0), 9)
add("Topen", 112, 29, [2, 0], u32(2) + u8(0), 12)
add("Ropen", 113, 29, [JQ(0, 0, 5), 8168], qid(0, 0, 5) + u32(8168), 24)
add("Tcreate", 114, 30, [2, "new.txt", 0o644, 1], u32(2) + s("new.txt") + u32(0o644) + u8(1), 18 + 7)
add("Rcreate", 115, 30, [JQ(0, 0, 6), 0], qid(0, 0, 6) + u32(0), 24)
add("Tread", 116, 31, [3, N(4096), 8168], u32(3) + u64(4096) + u32(8168), 23)
add("Rread", 117, 31, [JH(b"hello, world\n")], u32(13) + b"hello, world\n", 11 + 13)
add("Rread", 117, 32, [JH(b"")], u32(0), 11)
add("Twrite", 118, 33, [3, N(0x100000000), JH(b"abc\x00\xff")], u32(3) + u64(0x100000000) + u32(5) + b"abc\x00\xff", 23 + 5)
add("Rwrite", 119, 33, [5], u32(5), 11)
add("Tclunk", 120, 34, [3], u32(3), 11)
add("Rclunk", 121, 34, [], b"", 7)
add("Tremove", 122, 35, [4], u32(4), 11)
add("Rremove", 123, 35, [], b"", 7)
add("Tstat", 124, 36, [0], u32(0), 11)
# legacy stat: size[2] type[2] dev[4] qid[13] mode[4] atime[4] mtime[4] length[8] name[s] uid[s] gid[s] muid[s]
st_inner = (u16(0) + u32(0) + qid(0x80, 0, 1) + u32(0x800001ED) + u32(1700000000) + u32(1700000000) + u64(0)
            + s("/") + s("root") + s("root") + s("root"))
stat = u16(len(st_inner)) + st_inner
assert len(st_inner) == 47 + 1 + 4 + 4 + 4
add("Rstat", 125, 36, [JH(stat)], u16(len(stat)) + stat, 9 + len(stat))
add("Twstat", 126, 37, [0, JH(stat)], u32(0) + u16(len(stat)) + stat, 13 + len(stat))
add("Rwstat", 127, 37, [], b"", 7)

comment = (
    "Golden 9P2000.L vectors. The file is a JSON array; this first element is only a comment, every other "
    "element is a vector: name, type (message id), tag, fields (in the order of the message's format string), "
    "hex (the complete message incl. size[4] type[1] tag[2], little-endian), source. Field conventions: "
    "b/w/d (u8/u16/u32) are JSON numbers; q (u64) is a decimal string with an 'n' suffix, e.g. \"512000n\"; "
    "s is a JSON string (UTF-8 bytes) or {\"hex\": \"..\"} for arbitrary bytes; Q (qid) is "
    "{\"type\": n, \"version\": n, \"path\": \"<u64>n\"}; T is an array of strings; R is an array of "
    "qids; D (u32 count + bytes) is {\"hex\": \"..\"}. Generated by tests/golden/gen-9p-vectors.py, which "
    "writes every field with struct.pack from the reference §1.3 layouts and checks each length against "
    "the spec's Total-bytes column; it does not use the TS codec.")
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "9p-vectors.json")
with open(path, "w") as f:
    f.write("[\n" + json.dumps({"_comment": comment}, ensure_ascii=False))
    for v in vectors:
        f.write(",\n" + json.dumps(v, ensure_ascii=False))
    f.write("\n]\n")
print(f"wrote {len(vectors)} vectors to {path}")
