// The one table of 9P2000.L messages. Every T-message the server decodes and every R-message
// it encodes is described here, once, by a format string in Linux's alphabet
// (net/9p/protocol.c):
//
//   b u8   w u16   d u32   q u64   s string (len[2] bytes)   Q qid (type[1] version[4] path[8])
//   T names (count[2] strings, at most 16)   R qids (count[2] qids)   D data (count[4] bytes)
//
// A message's fields are numbered in wire order; handlers read them by index (see wire.ts).
// Ids from Linux include/net/9p/9p.h; R = T + 1. An empty format means "not a message the
// server accepts": the dispatcher answers Rlerror(EOPNOTSUPP).

export const P9_TLERROR: u8 = 6;
export const P9_RLERROR: u8 = P9_TLERROR + 1;
export const P9_TSTATFS: u8 = 8;
export const P9_TLOPEN: u8 = 12;
export const P9_TLCREATE: u8 = 14;
export const P9_TSYMLINK: u8 = 16;
export const P9_TMKNOD: u8 = 18;
export const P9_TRENAME: u8 = 20;
export const P9_TREADLINK: u8 = 22;
export const P9_TGETATTR: u8 = 24;
export const P9_TSETATTR: u8 = 26;
export const P9_TXATTRWALK: u8 = 30;
export const P9_TXATTRCREATE: u8 = 32;
export const P9_TREADDIR: u8 = 40;
export const P9_TFSYNC: u8 = 50;
export const P9_TLOCK: u8 = 52;
export const P9_TGETLOCK: u8 = 54;
export const P9_TLINK: u8 = 70;
export const P9_TMKDIR: u8 = 72;
export const P9_TRENAMEAT: u8 = 74;
export const P9_TUNLINKAT: u8 = 76;
export const P9_TVERSION: u8 = 100;
export const P9_TAUTH: u8 = 102;
export const P9_TATTACH: u8 = 104;
export const P9_TERROR: u8 = 106;
export const P9_TFLUSH: u8 = 108;
export const P9_TWALK: u8 = 110;
export const P9_TOPEN: u8 = 112;
export const P9_TCREATE: u8 = 114;
export const P9_TREAD: u8 = 116;
export const P9_TWRITE: u8 = 118;
export const P9_TCLUNK: u8 = 120;
export const P9_TREMOVE: u8 = 122;
export const P9_TSTAT: u8 = 124;
export const P9_TWSTAT: u8 = 126;

/** Format of the T-message `type` (body after the 7-byte header); "" = not accepted. */
export function tFormat(type: u8): string {
  switch (type) {
    case P9_TSTATFS: return "d";
    case P9_TLOPEN: return "dd";
    case P9_TLCREATE: return "dsddd";
    case P9_TSYMLINK: return "dssd";
    case P9_TMKNOD: return "dsdddd";
    case P9_TRENAME: return "dds";
    case P9_TREADLINK: return "d";
    case P9_TGETATTR: return "dq";
    case P9_TSETATTR: return "dddddqqqqq";
    case P9_TXATTRWALK: return "dds";
    case P9_TXATTRCREATE: return "dsqd";
    case P9_TREADDIR: return "dqd";
    case P9_TFSYNC: return "dd";
    case P9_TLOCK: return "dbdqqds";
    case P9_TGETLOCK: return "dbqqds";
    case P9_TLINK: return "dds";
    case P9_TMKDIR: return "dsdd";
    case P9_TRENAMEAT: return "dsds";
    case P9_TUNLINKAT: return "dsd";
    case P9_TVERSION: return "ds";
    case P9_TAUTH: return "dssd";
    case P9_TATTACH: return "ddssd";
    case P9_TFLUSH: return "w";
    case P9_TWALK: return "ddT";
    case P9_TREAD: return "dqd";
    case P9_TWRITE: return "dqD";
    case P9_TCLUNK: return "d";
    case P9_TREMOVE: return "d";
    default: return "";
  }
}

/** Format of the R-message `type` (the reply to T = type − 1). */
export function rFormat(type: u8): string {
  switch (type) {
    case P9_RLERROR: return "d";
    case P9_TSTATFS + 1: return "ddqqqqqqd";
    case P9_TLOPEN + 1: return "Qd";
    case P9_TLCREATE + 1: return "Qd";
    case P9_TSYMLINK + 1: return "Q";
    case P9_TMKNOD + 1: return "Q";
    case P9_TRENAME + 1: return "";
    case P9_TREADLINK + 1: return "s";
    case P9_TGETATTR + 1: return "qQdddqqqqqqqqqqqqqqq";
    case P9_TSETATTR + 1: return "";
    case P9_TXATTRWALK + 1: return "q";
    case P9_TXATTRCREATE + 1: return "";
    case P9_TREADDIR + 1: return "D";
    case P9_TFSYNC + 1: return "";
    case P9_TLOCK + 1: return "b";
    case P9_TGETLOCK + 1: return "bqqds";
    case P9_TLINK + 1: return "";
    case P9_TMKDIR + 1: return "Q";
    case P9_TRENAMEAT + 1: return "";
    case P9_TUNLINKAT + 1: return "";
    case P9_TVERSION + 1: return "ds";
    case P9_TAUTH + 1: return "Q";
    case P9_TATTACH + 1: return "Q";
    case P9_TFLUSH + 1: return "";
    case P9_TWALK + 1: return "R";
    case P9_TREAD + 1: return "D";
    case P9_TWRITE + 1: return "d";
    case P9_TCLUNK + 1: return "";
    case P9_TREMOVE + 1: return "";
    default: return "";
  }
}
